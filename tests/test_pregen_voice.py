"""``phosphene pregen voice`` on a tiny YourTTS-shaped model in coqui-tts's folder layout."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from phosphene.cli import main
from phosphene.models.bank import Bank

from pregen_tiny_models import build_tiny_yourtts

TEXT = "Bonjour tout le monde. Je suis une voix clonée!"


@pytest.fixture(scope="module")
def yourtts_dir(tmp_path_factory):
    built = build_tiny_yourtts(tmp_path_factory.mktemp("build") / "your_tts")
    # Configs carry the absolute paths of the machine that wrote them: move the folder so the
    # command has to find its files where they are now.
    moved = tmp_path_factory.mktemp("models") / "your_tts"
    shutil.move(str(built), moved)
    return moved


def _voice_wav(path, seconds=3.5, sr=22050, amplitude=0.3):
    t = np.arange(int(seconds * sr)) / sr
    f0 = 160 + 20 * np.sin(2 * np.pi * 0.7 * t)   # a voice-like glide with harmonics
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    soundfile.write(path, (amplitude * x / np.max(np.abs(x))).astype(np.float32), sr)
    return path


def _expected_model_samples(model_dir, tmp_path, reference, sentences, seed, gap_s):
    """The same synthesis straight through coqui-tts, to check the clip's length."""
    import torch
    from TTS.utils import synthesizer as coqui_synth

    from phosphene.models.pregen.voice import localised_config
    checkpoint, config = localised_config(model_dir, tmp_path)
    synth = coqui_synth.Synthesizer(tts_checkpoint=checkpoint, tts_config_path=config)
    ref = tmp_path / "ref16k.wav"
    data, sr = soundfile.read(reference, dtype="float32")
    import soxr
    soundfile.write(ref, soxr.resample(data, sr, 16000, quality="VHQ"), 16000, subtype="FLOAT")
    synth.tts_model.clone_voice([str(ref)], "reference", tmp_path / "voices")
    total = 0
    for i, sentence in enumerate(sentences):
        torch.manual_seed(seed + i)
        wav = synth.tts(sentence, speaker_name="reference", language_name="fr-fr",
                        voice_dir=tmp_path / "voices", split_sentences=False)
        total += len(wav) - coqui_synth.PAD_SILENCE_SAMPLES
    return total + int(round(gap_s * 16000)) * (len(sentences) - 1)


def test_pregen_voice_writes_clip_with_provenance(yourtts_dir, tmp_path):
    reference = _voice_wav(tmp_path / "me.wav")
    bank_dir = tmp_path / "bank"
    # the real console script, as a performer runs it
    result = subprocess.run(
        [sys.executable, "-m", "phosphene", "pregen", "voice", "--text", TEXT,
         "--speaker-wav", str(reference), "--language", "fr-fr", "--model", str(yourtts_dir),
         "--bank", str(bank_dir), "--name", "bonjour", "--seed", "5", "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    entry = Bank(bank_dir).get("bonjour")
    source = entry.source
    assert source["backend"] == "yourtts" and source["language"] == "fr-fr"
    assert source["text"] == TEXT and source["seed"] == 5
    assert source["sentences"] == ["Bonjour tout le monde.", "Je suis une voix clonée!"]
    assert source["speaker_files"][0]["sha256"] == hashlib.sha256(reference.read_bytes()).hexdigest()
    assert source["model_sample_rate"] == 16000
    samples, sr = soundfile.read(bank_dir / entry.file, dtype="float32")
    assert sr == 48000 == entry.sample_rate and len(samples) == entry.frames
    expected_16k = _expected_model_samples(yourtts_dir, tmp_path, reference,
                                           source["sentences"], 5, 0.3)
    assert abs(entry.frames - 3 * expected_16k) <= 1
    assert entry.loudness_lufs == pytest.approx(-23.0, abs=0.2) or entry.peak_dbfs >= -1.01
    assert (bank_dir / "bonjour.features.npz").exists()


def test_same_seed_same_clip_other_seed_other_clip(yourtts_dir, tmp_path):
    reference = _voice_wav(tmp_path / "me.wav")
    bank_dir = tmp_path / "bank"
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert main(["pregen", "voice", "--text", "Olá, tudo bem?", "--speaker-wav",
                     str(reference), "--language", "pt-br", "--model", str(yourtts_dir),
                     "--bank", str(bank_dir), "--name", name, "--seed", str(seed),
                     "--no-progress"]) == 0
    bank = Bank(bank_dir)
    a, b, c = (bank.load_audio(n)[0] for n in "abc")
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_reference_checks(yourtts_dir, tmp_path, capsys):
    bank_dir = tmp_path / "bank"
    too_short = _voice_wav(tmp_path / "short.wav", seconds=0.5)
    assert main(["pregen", "voice", "--text", "Hello.", "--speaker-wav", str(too_short),
                 "--language", "en", "--model", str(yourtts_dir), "--bank", str(bank_dir),
                 "--name", "x"]) == 1
    assert "short.wav is 0.50 s long" in capsys.readouterr().err
    # a clipped, short reference is used but its problems are reported and recorded
    clipped = _voice_wav(tmp_path / "clipped.wav", seconds=2.0, amplitude=1.0)
    data, sr = soundfile.read(clipped)
    soundfile.write(clipped, np.clip(data * 3, -1, 1), sr)
    assert main(["pregen", "voice", "--text", "Hello there.", "--speaker-wav", str(clipped),
                 "--language", "en", "--model", str(yourtts_dir), "--bank", str(bank_dir),
                 "--name", "clipped", "--no-progress"]) == 0
    warnings = Bank(bank_dir).get("clipped").source["speaker_files"][0]["warnings"]
    assert any("clipped" in w for w in warnings) and any("2.0 s long" in w for w in warnings)


def test_bad_model_folder_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    reference = _voice_wav(tmp_path / "me.wav")
    assert main(["pregen", "voice", "--text", "Hi.", "--speaker-wav", str(reference),
                 "--language", "en", "--model", str(tmp_path / "empty"), "--bank",
                 str(tmp_path / "bank"), "--name", "x"]) == 1
    assert "is not a YourTTS folder" in capsys.readouterr().err
