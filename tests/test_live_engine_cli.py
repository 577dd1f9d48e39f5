"""``phosphene live`` as a performer runs it (a subprocess): headless, from a file, with a
report and a recording; and the one-line errors for bad input. Plus the engine's parts that
have their own contract: the generator worker's single-slot mailbox and error handling, and
the clip player's sample-accurate mixing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from live_engine_helpers import SR, tiny_generator, write_clicks, write_presets
from phosphene.live.audio.clips import ClipPlayer
from phosphene.live.show.director import LatentRequest
from phosphene.live.runtime.worker import GeneratorWorker
from phosphene.live.runtime.recording import read_recording
from phosphene.models.bank import Bank
from phosphene.models.loading import save_generator


def phosphene(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "phosphene", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_live_headless_from_a_file_writes_report_and_recording(tmp_path):
    model = save_generator(tiny_generator(), tmp_path / "tiny.safetensors")
    preset = write_presets(tmp_path / "presets")
    wav = write_clicks(tmp_path / "clicks.wav", [0.3, 0.8, 1.3], duration_s=2.0)
    result = phosphene("live", "--headless", "--preset", preset, "--model", model,
                       "--audio-file", wav, "--output", "none", "--no-osc",
                       "--report", tmp_path / "run.json", "--record", tmp_path / "set")
    assert result.returncode == 0, result.stderr
    assert "frames shown" in result.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["model"] == str(model)
    assert report["onsets"]["detected"] == 3
    assert report["frames"]["presented"] > 10 and report["frames"]["generated"] > 0
    for key in ("p50", "p95", "p99", "max"):
        assert report["frames"]["frame_time_ms"][key] > 0
    assert set(report["final"]["parameters"]) >= {"psi", "flash.amount"}
    audio, events, session = read_recording(tmp_path / "set")
    recorded = sf.read(audio)[0]
    # the whole file went through the analyzer (to the last, zero-padded hop)
    assert len(recorded) == pytest.approx(2.0 * SR, abs=256)
    assert session["preset_name"] == "stage" and events == []


@pytest.mark.parametrize("args, message", [
    (["--audio-file", "missing.wav"], "--audio-file missing.wav: no such file"),
    (["--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["--size", "10x10"], "size must be WIDTHxHEIGHT"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = phosphene("live", "--headless", "--no-osc", *args, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def _request(i: int) -> LatentRequest:
    w = np.full((2, 2), i, np.float32)
    return LatentRequest(sample_index=i, w=w, w_raw=w, truncation_psi=1.0, noise_strength=0.0,
                         noise_seed=0, keyframe=0)


def test_generator_worker_renders_the_newest_request_and_survives_errors():
    started, release = threading.Event(), threading.Event()

    def render(request):
        if request.sample_index == 1:          # hold the worker busy on the first request
            started.set()
            release.wait(10)
        if request.sample_index == 99:
            raise RuntimeError("CUDA out of memory (a real generator's failure)")
        return request.sample_index * 10

    with GeneratorWorker(render) as worker:
        worker.submit(_request(1))
        assert started.wait(10)
        for i in range(2, 50):                 # arrive while the worker is busy
            worker.submit(_request(i))
        release.set()
        frame = worker.wait_for_frame(after_seq=1, timeout=10)
        assert frame.request.sample_index == 49 and frame.image == 490   # latest wins
        assert worker.generated == 2 and worker.superseded == 47
        worker.submit(_request(99))
        deadline = time.monotonic() + 10
        while worker.errors == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.errors == 1 and worker.error_kinds == {"RuntimeError": 1}
        assert worker.latest().image == 490    # the last good frame stays
        worker.submit(_request(7))
        assert worker.wait_for_frame(after_seq=2, timeout=10).image == 70


def test_clip_player_mixes_on_the_sample_clock(tmp_path):
    bank = Bank(tmp_path / "bank", sample_rate=SR, create=True)
    bank.add("blip", np.ones(300, np.float32) * 0.25, SR, source={"backend": "test"})
    samples = bank.load_audio("blip")[0]
    player = ClipPlayer(bank, SR, channels=2, gain=1.0)
    assert player.play("blip", gain=2.0, at_sample=1000 + 100)   # 100 samples into block 1000
    first = player.mix(1000, 256).copy()
    second = player.mix(1256, 256).copy()
    out = np.concatenate([first, second])
    expected = np.zeros((512, 2), np.float32)
    expected[100:400] = samples * 2.0
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert player.mix(1512, 256) is None and player.playing == []   # finished, removed
    # names only: a path is refused by the bank's name rule, counted, never opened
    assert not player.play("../bank", at_sample=0) and player.errors == 1
    assert not player.play("missing", at_sample=0) and player.errors == 2
