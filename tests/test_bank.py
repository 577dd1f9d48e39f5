"""The clip bank: atomic writes, resampling, EBU R128 normalisation, feature timelines,
name safety, corrupt-manifest recovery, and the ``phosphene bank`` commands."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyloudnorm
import pytest
import soundfile

from phosphene.cli import main
from phosphene.errors import PhospheneError
from phosphene.live.analysis.clip_timeline import compute_timeline
from phosphene.models.bank import Bank, BankError, BankNameError, validate_name
from phosphene.models.bank.atomic import atomic_path


def _tone(seconds: float, sr: int, amplitude: float = 0.1, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_add_resamples_normalises_and_writes_timeline(tmp_path):
    bank = Bank(tmp_path / "bank", create=True, compute_timeline=compute_timeline)
    entry = bank.add("tone", _tone(2.0, 22050), 22050, source={"backend": "test", "seed": 7},
                     tags=["a", "b"])
    samples, sr = bank.load_audio("tone")
    assert sr == 48000 and entry.sample_rate == 48000
    assert samples.dtype == np.float32 and samples.shape == (96000, 1)
    assert entry.frames == 96000 and entry.duration_s == pytest.approx(2.0)
    # the file itself measures at the EBU R128 target, and the gain recorded explains it
    measured = pyloudnorm.Meter(48000).integrated_loudness(samples.astype(np.float64))
    assert measured == pytest.approx(-23.0, abs=0.1)
    assert entry.gain_db == pytest.approx(-23.0 - entry.original_loudness_lufs, abs=0.01)
    # resampling kept the pitch: the spectrum peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(samples[:, 0]))
    assert np.fft.rfftfreq(len(samples), 1 / 48000)[np.argmax(spectrum)] == pytest.approx(440, abs=1)
    # the analyzer timeline: one frame per hop, stamped with the clip's sample clock
    features = bank.load_features("tone")
    hop = int(features["hop_length"])
    assert len(features["level"]) == 96000 // hop
    assert features["sample_index"][-1] == (96000 // hop) * hop
    assert float(np.max(features["level"])) > 0.1        # a steady tone is heard
    # manifest and sidecar carry the same provenance
    manifest = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert manifest["clips"][0]["source"] == {"backend": "test", "seed": 7}
    sidecar = json.loads((tmp_path / "bank" / "tone.json").read_text())
    assert sidecar == manifest["clips"][0]
    assert bank.names() == ["tone"] and bank.get("tone").tags == ["a", "b"]


def test_a_bank_without_a_timeline_function_adds_clips_without_one(tmp_path):
    # the bank (models) never imports the live analyzer: its caller passes the function
    entry = Bank(tmp_path, create=True).add("plain", _tone(1.0, 48000), 48000, source={})
    assert entry.features is None and not list(tmp_path.glob("*.features.npz"))
    assert Bank(tmp_path).load_features("plain") is None


def test_peak_ceiling_limits_gain_for_spiky_clips(tmp_path):
    bank = Bank(tmp_path, create=True)
    x = _tone(2.0, 48000, amplitude=0.001)
    x[48000] = 0.5                      # one loud click in a very quiet clip
    entry = bank.add("spiky", x, 48000, source={})
    samples, _ = bank.load_audio("spiky")
    assert 20 * np.log10(np.max(np.abs(samples))) <= -1.0 + 0.01
    assert entry.loudness_lufs < -23.0  # it could not reach the target without clipping


@pytest.mark.parametrize("bad", ["", "../evil", "a/b", "..", "a b", "-rm", "x.flac", "bank",
                                 "é", "a" * 65, "a\\b", None])
def test_names_are_names(tmp_path, bad):
    with pytest.raises(BankNameError):
        validate_name(bad)
    bank = Bank(tmp_path, create=True)
    with pytest.raises(PhospheneError):
        bank.get(bad)
    with pytest.raises(PhospheneError):
        bank.add(bad, _tone(0.5, 48000), 48000, source={})
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["bank.lock"])


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "clip.flac"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".flac") as tmp:
            tmp.write_bytes(b"half of a new fi")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.flac"]


def test_duplicate_name_refused_unless_overwrite(tmp_path):
    bank = Bank(tmp_path, create=True)
    bank.add("x", _tone(1.0, 48000), 48000, source={"take": 1})
    with pytest.raises(BankError, match="already"):
        bank.add("x", _tone(1.0, 48000), 48000, source={"take": 2})
    bank.add("x", _tone(0.5, 48000), 48000, source={"take": 2}, overwrite=True)
    assert bank.get("x").source == {"take": 2} and bank.get("x").frames == 24000


def test_corrupt_manifest_is_backed_up_and_rebuilt_losslessly(tmp_path, caplog):
    bank = Bank(tmp_path, create=True)
    bank.add("one", _tone(1.0, 48000), 48000, source={"backend": "yourtts", "text": "hé"})
    bank.add("two", _tone(1.5, 44100), 44100, source={"backend": "jukebox", "seed": 3})
    before = {e.name: e.model_dump() for e in bank.entries()}
    (tmp_path / "bank.json").write_text('{"format": 1, "clips": [ {"name": "one", ')
    with caplog.at_level(logging.ERROR):
        after = {e.name: e.model_dump() for e in Bank(tmp_path).entries()}
    assert after == before
    assert "corrupt" in caplog.text
    backups = list(tmp_path.glob("bank.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text().startswith('{"format": 1, "clips"')
    json.loads((tmp_path / "bank.json").read_text())  # a valid manifest again


def test_rebuild_without_sidecar_measures_the_clip(tmp_path):
    bank = Bank(tmp_path, create=True, compute_timeline=compute_timeline)
    bank.add("lost", _tone(1.0, 48000), 48000, source={"backend": "test"})
    (tmp_path / "lost.json").unlink()
    (tmp_path / "bank.json").unlink()
    entry = Bank(tmp_path).get("lost")
    assert entry.source["backend"] == "unknown" and entry.frames == 48000
    assert entry.loudness_lufs == pytest.approx(-23.0, abs=0.1)
    assert entry.features == "lost.features.npz"


def test_manifest_cannot_point_outside_the_bank(tmp_path):
    bank = Bank(tmp_path / "b", create=True)
    bank.add("ok", _tone(1.0, 48000), 48000, source={})
    manifest = json.loads((tmp_path / "b" / "bank.json").read_text())
    manifest["clips"][0]["file"] = "../secret.flac"
    (tmp_path / "b" / "bank.json").write_text(json.dumps(manifest))
    soundfile.write(tmp_path / "secret.flac", _tone(1.0, 48000), 48000)
    with pytest.raises(BankError, match="outside the bank"):
        bank.load_audio("ok")


def test_bank_cli_import_list_info_remove(tmp_path, capsys):
    recording = tmp_path / "My Take #1.wav"
    stereo = np.stack([_tone(1.0, 44100), _tone(1.0, 44100, hz=660)], axis=1)
    soundfile.write(recording, stereo, 44100)
    bank_dir = tmp_path / "bank"
    assert main(["bank", "import", str(recording), "--bank", str(bank_dir), "--tags",
                 "mine,intro"]) == 0
    assert main(["bank", "list", "--bank", str(bank_dir)]) == 0
    out = capsys.readouterr().out
    assert "My_Take_1" in out and "import" in out
    assert main(["bank", "info", "My_Take_1", "--bank", str(bank_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["channels"] == 2 and info["sample_rate"] == 48000 and info["frames"] == 48000
    assert info["tags"] == ["mine", "intro"]
    assert info["source"]["backend"] == "import"
    assert info["source"]["original_file"] == "My Take #1.wav"
    assert info["features"] == "My_Take_1.features.npz"     # the CLI wires in the analyzer
    assert len(Bank(bank_dir).load_features("My_Take_1")["level"]) > 0
    assert main(["bank", "remove", "My_Take_1", "--bank", str(bank_dir)]) == 0
    assert Bank(bank_dir).names() == []
    assert not list(bank_dir.glob("My_Take_1*"))


def test_bank_cli_errors_are_one_line(tmp_path, capsys):
    bank_dir = tmp_path / "bank"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    assert main(["bank", "import", str(not_audio), "--bank", str(bank_dir)]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["bank", "import", str(tmp_path / "missing.wav"), "--bank", str(bank_dir)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["bank", "info", "nothing", "--bank", str(bank_dir)]) == 1
    assert "no clip named 'nothing'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bank", "remove", "../x", "--bank", str(bank_dir)])
    assert "not allowed" in capsys.readouterr().err


def _drop_from_manifest(bank_dir, name):
    """A hand edit of bank.json that leaves the file valid and drops one clip's entry."""
    manifest = json.loads((bank_dir / "bank.json").read_text())
    manifest["clips"] = [e for e in manifest["clips"] if e["name"] != name]
    (bank_dir / "bank.json").write_text(json.dumps(manifest, indent=1))


def test_clips_a_hand_edited_manifest_dropped_are_reported_and_repaired(tmp_path, caplog):
    bank = Bank(tmp_path, create=True)
    bank.add("kept", _tone(1.0, 48000), 48000, source={"backend": "test"})
    entry = bank.add("dropped", _tone(1.5, 48000), 48000,
                     source={"backend": "yourtts", "text": "bonjour"}, tags=["fr"])
    _drop_from_manifest(tmp_path, "dropped")

    with caplog.at_level(logging.WARNING):
        reopened = Bank(tmp_path)
        assert reopened.names() == ["kept"]
        reopened.names()
    warnings = [r.getMessage() for r in caplog.records if "not in bank.json" in r.getMessage()]
    assert len(warnings) == 1 and "dropped.flac" in warnings[0]      # once, naming the file
    assert "bank repair" in warnings[0]
    assert reopened.orphans() == {"dropped": ["dropped.flac", "dropped.json"]}

    assert [e.name for e in reopened.repair()] == ["dropped"]
    assert reopened.get("dropped").model_dump() == entry.model_dump()   # lossless, sidecar
    assert reopened.orphans() == {} and reopened.repair() == []


def test_import_never_overwrites_an_orphan_silently(tmp_path):
    bank = Bank(tmp_path, create=True)
    bank.add("intro", _tone(1.0, 48000), 48000, source={"take": 1})
    original = (tmp_path / "intro.flac").read_bytes()
    _drop_from_manifest(tmp_path, "intro")
    recording = tmp_path / "other.wav"
    soundfile.write(recording, _tone(0.5, 48000, hz=880), 48000)

    with pytest.raises(BankError, match=r"intro\.flac.*not in bank\.json.*--overwrite"):
        Bank(tmp_path).import_file(recording, "intro")
    assert (tmp_path / "intro.flac").read_bytes() == original
    Bank(tmp_path).import_file(recording, "intro", overwrite=True)
    assert Bank(tmp_path).get("intro").frames == 24000 and Bank(tmp_path).orphans() == {}


def test_bank_cli_shows_orphans_refuses_import_and_repairs(tmp_path, capsys):
    bank_dir = tmp_path / "bank"
    recording = tmp_path / "take.wav"
    soundfile.write(recording, _tone(1.0, 44100), 44100)
    assert main(["bank", "import", str(recording), "--bank", str(bank_dir), "--name", "a"]) == 0
    assert main(["bank", "import", str(recording), "--bank", str(bank_dir), "--name", "b"]) == 0
    _drop_from_manifest(bank_dir, "b")
    capsys.readouterr()

    assert main(["bank", "list", "--bank", str(bank_dir)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("b "))
    assert "NOT IN bank.json" in line and "b.flac" in line
    assert "bank repair" in out
    assert main(["bank", "list", "--json", "--bank", str(bank_dir)]) == 0
    captured = capsys.readouterr()
    assert [e["name"] for e in json.loads(captured.out)] == ["a"]
    assert "bank repair" in captured.err

    assert main(["bank", "import", str(recording), "--bank", str(bank_dir), "--name", "b"]) == 1
    err = capsys.readouterr().err
    assert "b.flac" in err and "--overwrite" in err and "Traceback" not in err

    assert main(["bank", "repair", "--bank", str(bank_dir)]) == 0
    assert "b: listed again (from its sidecar)" in capsys.readouterr().out
    assert Bank(bank_dir).names() == ["a", "b"]
    assert main(["bank", "repair", "--bank", str(bank_dir)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_remove_deletes_an_orphans_files(tmp_path):
    bank = Bank(tmp_path, create=True, compute_timeline=compute_timeline)
    bank.add("gone", _tone(1.0, 48000), 48000, source={})
    _drop_from_manifest(tmp_path, "gone")
    Bank(tmp_path).remove("gone")
    assert not list(tmp_path.glob("gone*")) and Bank(tmp_path).orphans() == {}
