"""``phosphene pregen batch JOBS.yaml --cluster local:2``: music and voice jobs on two Ray
workers (tiny Jukebox and YourTTS models, random weights), every clip written once into the
one bank; a worker killed mid-job (SIGKILL, by its pid) is restarted, its Jukebox job resumes
from the last checkpointed window, and the bank ends complete and uncorrupted."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time

import numpy as np
import pytest
import soundfile

pytest.importorskip("ray")

from phosphene.cli import main  # noqa: E402
from phosphene.cluster import connect  # noqa: E402
from phosphene.models.bank import Bank  # noqa: E402
from phosphene.models.pregen import jukebox_sampling as js  # noqa: E402
from phosphene.models.pregen.batch import load_jobs, run_batch  # noqa: E402
from pregen_tiny_models import build_tiny_jukebox, build_tiny_yourtts  # noqa: E402

JOBS = """\
defaults:
  music: {model: jukebox, seconds: 0.5, levels: top, artist: The Beatles, genre: Rock}
jobs:
  - {kind: music, name: rock, lyrics: "hello world", seed: [1, 2], tags: [draft]}
  - {kind: voice, name: bonjour, text: "Bonjour tout le monde.", language: fr-fr,
     speaker_wav: me.wav, model: your_tts}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    build_tiny_jukebox(d / "jukebox")
    build_tiny_yourtts(d / "your_tts")
    t = np.arange(int(3.5 * 22050)) / 22050
    voice = 0.3 * np.sin(2 * np.pi * 160 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    soundfile.write(d / "me.wav", voice.astype(np.float32), 22050)
    return d


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray runtime with 2 CPU workers for the module; ``--cluster local:2`` in the
    tests joins it (short temp folder: Unix socket paths stay under 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="phr", dir="/tmp") as tmp:
        with connect("local:2", temp_dir=tmp) as cluster:
            yield cluster


def bank_is_whole(bank_dir, names):
    """Every clip listed once, its files there and readable, nothing else in the folder."""
    manifest = json.loads((bank_dir / "bank.json").read_text())
    listed = [c["name"] for c in manifest["clips"]]
    assert sorted(listed) == sorted(names)
    bank = Bank(bank_dir)
    for name in names:
        samples, rate = bank.load_audio(name)
        assert rate == 48000 and len(samples) > 0 and np.all(np.isfinite(samples))
    clip_files = {p.name for p in bank_dir.iterdir() if p.is_file() and p.name not in
                  ("bank.json", "bank.lock")}
    expected = set()
    for entry in bank.entries():
        expected |= {entry.file, f"{entry.name}.json"} | ({entry.features} if entry.features
                                                           else set())
    assert clip_files == expected          # no temp files, no orphans, no duplicates


def test_batch_on_cluster_writes_every_clip_once(models, ray_local, tmp_path, capsys):
    jobs = models / "jobs.yaml"
    jobs.write_text(JOBS)
    bank_dir = tmp_path / "bank"
    argv = ["pregen", "batch", str(jobs), "--bank", str(bank_dir), "--cluster", "local:2",
            "--no-progress"]
    assert main(argv) == 0
    bank_is_whole(bank_dir, ["rock-s1", "rock-s2", "bonjour"])
    bank = Bank(bank_dir)
    rock1, rock2 = bank.get("rock-s1"), bank.get("rock-s2")
    assert rock1.source["backend"] == "jukebox" and rock1.source["seed"] == 1
    assert rock2.source["seed"] == 2 and rock1.tags == ["draft"]
    assert bank.get("bonjour").source["language"] == "fr-fr"
    # each seed sampled its own codes (the tiny top-level decoder makes the same sound of both)
    tokens = [np.load(bank_dir / ".work" / n / "tokens.npz")["level_0"] for n in ("rock-s1",
                                                                               "rock-s2")]
    assert not np.array_equal(*tokens)
    before = (bank_dir / "bank.json").read_bytes()
    capsys.readouterr()
    # run again: every clip is there, made by these jobs: nothing is run or written twice
    assert main(argv) == 0
    assert (bank_dir / "bank.json").read_bytes() == before
    assert capsys.readouterr().err.count("already in the bank (made by this job)") == 3


def test_killed_worker_is_retried_and_jukebox_resumes(models, ray_local, tmp_path):
    """Two identical Jukebox jobs (same settings and seed) under two names; the worker of one
    is killed after a few windows. Its job resumes from the checkpoint and ends with the same
    audio as its twin, and the bank is whole."""
    jobs = models / "twins.yaml"
    jobs.write_text("""\
jobs:
  - {kind: music, name: killed, model: jukebox, seconds: 0.5, levels: all,
     artist: The Beatles, genre: Rock, lyrics: "sing it soft", seed: 3}
  - {kind: music, name: twin, model: jukebox, seconds: 0.5, levels: all,
     artist: The Beatles, genre: Rock, lyrics: "sing it soft", seed: 3}
""")
    bank = Bank(tmp_path / "bank", create=True)
    killed_at = {}

    def on_event(what, name, details):
        if what != "started" or name != "killed":
            return
        checkpoint = js.TokenCheckpoint(bank.path / ".work" / "killed")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if checkpoint.exists():
                _tokens, windows, _fp, done = checkpoint.load()
                if windows >= 3:
                    assert not done
                    os.kill(details["pid"], signal.SIGKILL)
                    killed_at["windows"] = windows
                    return
            time.sleep(0.02)
        raise AssertionError("the job never reached its third window")

    report = run_batch(load_jobs(jobs), bank, device="cpu", cluster="local:2", progress=False,
                       on_event=on_event)
    assert killed_at, "the worker was not killed"
    assert report.failed == {} and sorted(report.done) == ["killed", "twin"]
    resumed = bank.get("killed").source["resumed_from_window"]
    assert resumed >= killed_at["windows"]                 # not started over
    assert bank.get("twin").source["resumed_from_window"] == 0
    np.testing.assert_array_equal(bank.load_audio("killed")[0], bank.load_audio("twin")[0])
    bank_is_whole(bank.path, ["killed", "twin"])


@pytest.mark.parametrize("jobs_text, message", [
    ("jobs:\n  - {kind: music, name: a, model: m, seconds: 1, artsit: X, genre: Rock}\n",
     "jobs[0] (a): artsit: Extra inputs are not permitted"),
    ("jobs:\n  - {kind: musc, name: a}\n", "jobs[0] (a): job: Input tag 'musc' found using "
     "'kind' does not match any of the expected tags: 'music', 'voice'"),
    ("jobs:\n  - {kind: voice, name: a, text: hi, language: de, speaker_wav: me.wav}\n",
     "jobs[0] (a): language: Input should be 'en', 'fr-fr' or 'pt-br'"),
    ("jobs:\n  - {kind: voice, name: a, text: hi, language: en, speaker_wav: nope.wav}\n",
     "jobs[0] (a): cannot read"),
    ("jobs:\n  - {kind: music, name: a, model: m, seconds: 1, artist: X, genre: Y}\n"
     "  - {kind: music, name: a, model: m, seconds: 2, artist: X, genre: Y}\n",
     "clip name 'a' is made by more than one job"),
    ("jobs:\n  - {kind: music, name: ../up, model: m, seconds: 1, artist: X, genre: Y}\n",
     "jobs[0] (../up): name:"),
])
def test_bad_job_file_is_one_line_and_writes_nothing(models, tmp_path, capsys, jobs_text,
                                                     message):
    jobs = models / "bad.yaml"
    jobs.write_text(jobs_text)
    bank_dir = tmp_path / "bank"
    assert main(["pregen", "batch", str(jobs), "--bank", str(bank_dir), "--cluster",
                 "local:2", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not bank_dir.exists()
