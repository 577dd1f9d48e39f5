"""Nothing non-finite or at full scale leaves through an audio output (issue 11, defect 4).

``live --audio-file`` of a sine with a NaN every 100 samples put 1,047 samples at +-1.0 on a
PA in 3 s (``np.clip`` lets NaN through). Every output block now goes through one place,
``AudioOut.write`` (``limiter.safe_for_output``: NaN/inf -> 0, soft limiter below full scale).
Checked on the real path: PortAudio into a PulseAudio null sink, recorded from its monitor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import soundfile as sf

from live_engine_helpers import SR, tiny_generator, write_presets
from pulse_server import SINK
from phosphene.live.audio.clips import ClipPlayer
from phosphene.live.audio.limiter import CEILING, KNEE, safe_for_output
from phosphene.models.bank import Bank
from phosphene.models.loading import save_generator


def _record(pulse, path):
    """``parec`` of the null sink's monitor, stereo float32, into ``path``."""
    recorder = subprocess.Popen(
        ["parec", f"--device={SINK}.monitor", "--format=float32le", "--channels=2",
         f"--rate={SR}", "--raw", "--latency-msec=20"],
        env=pulse.client_env(), stdout=open(path, "wb"))
    deadline = time.monotonic() + 10
    while path.stat().st_size == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return recorder


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return int(np.max(edges[1::2] - edges[::2]))


def _assert_safe(y: np.ndarray) -> None:
    assert np.isfinite(y).all()
    assert np.abs(y).max() < 1.0
    assert _longest_run(np.abs(y) >= 0.999) == 0      # no sample at (or a run of) full scale


def test_safe_for_output_zeroes_non_finite_and_limits_softly():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, 0.5, -0.79, 0.9, -1.5, 40.0, 1e30],
                 np.float32)
    y = safe_for_output(x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert y[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert y[4:6].tolist() == x[4:6].tolist()               # untouched below the knee
    assert np.all(np.abs(y) < 1.0) and np.all(np.abs(y) <= CEILING)
    assert np.all(np.sign(y[4:]) == np.sign(x[4:]))
    assert np.isnan(x[0])                                    # the caller's array is not changed
    # the curve is monotonic and continuous through the knee (no step, no flat top below it)
    ramp = np.linspace(0.0, 3.0, 30001, dtype=np.float32)
    out = safe_for_output(ramp)
    assert np.all(np.diff(out) >= 0)
    assert np.max(np.abs(np.diff(out))) < 2e-4
    assert abs(float(safe_for_output(np.float32([KNEE + 1e-3]))[0]) - (KNEE + 1e-3)) < 1e-5


def test_audio_out_never_plays_nan_inf_or_full_scale(pulse, tmp_path):
    from phosphene.live.audio.streams import AudioOut

    t = np.arange(SR) / SR
    block = (1.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)    # over full scale
    block[::100] = np.nan
    block[50::1000] = np.inf
    block[550::1000] = -np.inf
    raw = tmp_path / "rec.raw"
    recorder = _record(pulse, raw)
    try:
        with AudioOut("pulse", samplerate=SR, blocksize=256, channels=2) as audio_out:
            for i in range(0, len(block), 256):
                audio_out.write_blocking(block[i:i + 256], timeout=2.0)
            deadline = time.monotonic() + 10
            while audio_out.queued_frames() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
    finally:
        recorder.terminate()
        recorder.wait(timeout=5)
    y = np.fromfile(raw, dtype=np.float32)
    assert np.count_nonzero(np.abs(y) > 0.5) > 0.5 * SR     # the tone came out (2 channels)
    _assert_safe(y)


def test_live_audio_file_with_nan_every_100_samples(pulse, tmp_path):
    """The issue's reproduction, as a performer runs it."""
    t = np.arange(4 * SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    x[::100] = np.nan
    wav = tmp_path / "nan.wav"
    sf.write(wav, x, SR, subtype="FLOAT")
    model = save_generator(tiny_generator(), tmp_path / "tiny.safetensors")
    preset = write_presets(tmp_path / "presets")
    raw = tmp_path / "rec.raw"
    recorder = _record(pulse, raw)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "phosphene", "live", "--headless", "--preset", str(preset),
             "--model", str(model), "--audio-file", str(wav), "--output", "pulse", "--no-osc",
             "--duration", "3", "--report", str(tmp_path / "run.json")],
            capture_output=True, text=True, timeout=180)
        time.sleep(0.3)
    finally:
        recorder.terminate()
        recorder.wait(timeout=5)
    assert result.returncode == 0, result.stderr
    out = json.loads((tmp_path / "run.json").read_text())["audio"]["output"]
    assert out["device"] == "pulse"
    y = np.fromfile(raw, dtype=np.float32)
    assert np.count_nonzero(np.abs(y) > 0.3) > 0.5 * SR      # the sine was heard
    _assert_safe(y)


def test_a_hand_made_clip_with_nan_is_played_as_silence_there(tmp_path):
    bank = Bank(tmp_path / "bank", sample_rate=SR, create=True)
    bank.add("ok", np.full(SR // 10, 0.1, np.float32), SR, source={"backend": "test"})
    # a performer's own edit: a float WAV with NaN in it, listed in the manifest by hand
    bad = np.full(SR // 10, 0.2, np.float32)
    bad[::7] = np.nan
    bad[3::7] = np.inf
    sf.write(tmp_path / "bank" / "broken.wav", bad, SR, subtype="FLOAT")
    manifest = json.loads((tmp_path / "bank" / "bank.json").read_text())
    entry = dict(manifest["clips"][0], name="broken", file="broken.wav", features=None)
    manifest["clips"].append(entry)
    (tmp_path / "bank" / "bank.json").write_text(json.dumps(manifest))

    player = ClipPlayer(Bank(tmp_path / "bank"), SR, channels=2)
    assert player.play("broken", at_sample=0)
    block = player.mix(0, 512)
    assert np.isfinite(block).all()
    assert np.count_nonzero(block == 0.0) > 0 and np.abs(block).max() <= 0.2 + 1e-6
