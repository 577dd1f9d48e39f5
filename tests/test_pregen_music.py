"""``phosphene pregen music``: a tiny Jukebox (VQ-VAE + lyrics top prior + upsamplers) and a
tiny MusicGen, saved with ``save_pretrained`` and run through the real command."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from phosphene.cli import main
from phosphene.models.bank import Bank

from pregen_tiny_models import JUKEBOX_SAMPLE_RATE, build_tiny_jukebox, build_tiny_musicgen

LYRICS = "Hello world, hello moon\nsing it soft and slow"


@pytest.fixture(scope="module")
def jukebox_dir(tmp_path_factory):
    return build_tiny_jukebox(tmp_path_factory.mktemp("models") / "jukebox")


@pytest.fixture(scope="module")
def musicgen_dir(tmp_path_factory):
    return build_tiny_musicgen(tmp_path_factory.mktemp("models") / "musicgen")


def _jukebox(model, bank, name, *extra):
    return main(["pregen", "music", "--artist", "The Beatles", "--genre", "Rock",
                 "--lyrics", LYRICS, "--seconds", "0.5", "--model", str(model),
                 "--bank", str(bank), "--name", name, "--seed", "11", "--no-progress", *extra])


def _tokens(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k.startswith("level_")}


def test_jukebox_all_levels_and_resume_gives_identical_tokens(jukebox_dir, tmp_path):
    bank_dir = tmp_path / "bank"
    assert _jukebox(jukebox_dir, bank_dir, "song", "--levels", "all") == 0
    bank = Bank(bank_dir)
    entry = bank.get("song")
    assert entry.sample_rate == 48000 and entry.frames == 24000        # 0.5 s at the bank rate
    samples, sr = soundfile.read(bank_dir / entry.file)
    assert sr == 48000 and len(samples) == 24000
    assert entry.source["backend"] == "jukebox" and entry.source["artist"] == "The Beatles"
    assert entry.source["genre"] == "Rock" and entry.source["lyrics"] == LYRICS
    assert entry.source["levels"] == "all" and entry.source["seed"] == 11
    uninterrupted = _tokens(bank_dir / ".work" / "song" / "tokens.npz")
    # every level sampled to the full length: 0.5 s (504 samples: whole top-level codes) at 8x, 4x, 2x downsampling
    assert [uninterrupted[f"level_{i}"].shape for i in range(3)] == [(1, 63), (1, 126), (1, 252)]

    # the same run, interrupted after 11 windows (past the top level, into the upsamplers)
    assert _jukebox(jukebox_dir, bank_dir, "again", "--levels", "all", "--max-windows", "11") == 3
    assert "again" not in bank                                          # nothing half-written
    partial = _tokens(bank_dir / ".work" / "again" / "tokens.npz")
    assert partial["level_1"].shape[1] < 126 and partial["level_2"].shape[1] == 0
    # starting over without --resume would throw the work away: refused
    assert _jukebox(jukebox_dir, bank_dir, "again", "--levels", "all") == 1
    # resuming with different settings would mix two runs: refused
    assert main(["pregen", "music", "--artist", "The Beatles", "--genre", "Rock", "--lyrics",
                 LYRICS, "--seconds", "0.5", "--model", str(jukebox_dir), "--bank",
                 str(bank_dir), "--name", "again", "--seed", "12", "--resume",
                 "--no-progress"]) == 1
    assert _jukebox(jukebox_dir, bank_dir, "again", "--levels", "all", "--resume") == 0
    resumed = _tokens(bank_dir / ".work" / "again" / "tokens.npz")
    for key, value in uninterrupted.items():
        np.testing.assert_array_equal(resumed[key], value)
    np.testing.assert_array_equal(bank.load_audio("again")[0], bank.load_audio("song")[0])


def test_jukebox_top_level_draft_with_priming_and_several_samples(jukebox_dir, tmp_path):
    import torch
    from transformers.models.deprecated.jukebox import JukeboxModel

    bank_dir = tmp_path / "bank"
    sr = 8000
    t = np.arange(sr) / sr
    prime = tmp_path / "prime.wav"
    soundfile.write(prime, (0.4 * np.sin(2 * np.pi * 50 * t)).astype(np.float32), sr)
    assert _jukebox(jukebox_dir, bank_dir, "draft", "--levels", "top", "--samples", "2",
                    "--prime", str(prime), "--prime-seconds", "0.2") == 0
    bank = Bank(bank_dir)
    assert bank.names() == ["draft-1", "draft-2"]
    for name in bank.names():
        entry = bank.get(name)
        assert entry.frames == 24000 and entry.source["levels"] == "top"
        assert entry.source["prime"]["seconds"] == pytest.approx(0.2)
    tokens = _tokens(bank_dir / ".work" / "draft" / "tokens.npz")["level_0"]
    assert tokens.shape == (2, 63)
    # the first 0.2 s of codes are the priming recording's own codes
    model = JukeboxModel.from_pretrained(jukebox_dir).eval()
    import soxr
    x = soxr.resample(soundfile.read(prime, dtype="float32")[0], sr, JUKEBOX_SAMPLE_RATE,
                      quality="VHQ")[:200]
    with torch.no_grad():
        prime_codes = model.vqvae.encode(torch.tensor(x)[None, :, None], start_level=2)[0]
    np.testing.assert_array_equal(tokens[:, :25], np.repeat(prime_codes.numpy(), 2, axis=0))
    assert not np.array_equal(tokens[0, 25:], tokens[1, 25:])    # two different continuations


def test_unknown_artist_or_genre_suggests_close_matches(jukebox_dir, tmp_path, capsys):
    assert main(["pregen", "music", "--artist", "Beatles", "--genre", "Rock", "--seconds", "1",
                 "--model", str(jukebox_dir), "--bank", str(tmp_path), "--name", "x"]) == 1
    assert "did you mean: the beatles" in capsys.readouterr().err
    assert main(["pregen", "music", "--artist", "Nina Simone", "--genre", "jaz",
                 "--seconds", "1", "--model", str(jukebox_dir), "--bank", str(tmp_path),
                 "--name", "x"]) == 1
    assert "did you mean: jazz" in capsys.readouterr().err


def test_musicgen_backend(musicgen_dir, tmp_path):
    bank_dir = tmp_path / "bank"
    assert main(["pregen", "music", "--backend", "musicgen", "--prompt", "dark ambient drone",
                 "--seconds", "1.5", "--model", str(musicgen_dir), "--bank", str(bank_dir),
                 "--name", "drone", "--seed", "3", "--no-progress"]) == 0
    entry = Bank(bank_dir).get("drone")
    assert entry.frames == 72000 and entry.sample_rate == 48000
    assert entry.source["backend"] == "musicgen"
    assert entry.source["prompt"] == "dark ambient drone"
    assert entry.source["model_sample_rate"] == 8000
