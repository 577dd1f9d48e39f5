"""Supervised threads: an exception injected into each of the engine's threads is logged once,
counted in the report (and on /phosphene/status), and the thread goes on — the show never goes
silently deaf or frozen. An analyzer that keeps failing leaves the picture running on its own
clock. Real parts: a headless engine (EGL), a file or the PulseAudio virtual mic as input, OSC
over loopback with liblo's oscsend/oscdump."""

from __future__ import annotations

import logging
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import synth_audio as S
from live_engine_helpers import EngineRun, tiny_generator, write_presets
from phosphene.live.runtime.engine import EngineOptions
from phosphene.supervision import Supervisor

SR = 48000


# -- the supervisor itself ---------------------------------------------------------------------
def test_a_failing_body_is_restarted_counted_and_logged_once(caplog):
    supervisor = Supervisor()
    runs = []

    def body():
        runs.append(time.monotonic())
        if len(runs) <= 3:
            raise ValueError("injected")

    with caplog.at_level(logging.ERROR, logger="phosphene.supervision"):
        assert supervisor.run("worker", body) is True
    assert len(runs) == 4
    assert supervisor.restarts == {"worker": 3}
    assert supervisor.snapshot()["failures"] == [
        {"thread": "worker", "error": "ValueError: injected", "count": 3}]
    assert len([r for r in caplog.records if "injected" in r.getMessage()]) == 1
    assert runs[1] - runs[0] < 0.1            # the first restart comes within 100 ms


def test_supervision_gives_up_or_reraises_when_told():
    supervisor = Supervisor()

    def always():
        raise OSError("gone")

    assert supervisor.run("display", always, give_up_after=3) is False
    assert supervisor.restarts["display"] == 3
    with pytest.raises(OSError):
        supervisor.run("display", always, fatal=lambda exc: True)
    stop = threading.Event()
    stop.set()
    assert supervisor.run("display", always, should_stop=stop.is_set) is True


# -- the engine's threads ----------------------------------------------------------------------
def music(path, seconds: float):
    x, _ = S.clicks([0.25 * k for k in range(1, int(seconds * 4))], seconds, amp=0.5)
    sf.write(path, x, SR)
    return path


class FailOnce:
    """Wraps a callable so that its n-th call raises (an injected fault), then works again."""

    def __init__(self, fn, at: int = 5, exc: Exception | None = None):
        self.fn, self.at, self.calls = fn, at, 0
        self.exc = exc or RuntimeError("injected fault")

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise self.exc
        return self.fn(*args, **kwargs)


def run_engine(tmp_path, inject, seconds=4.0, **options):
    preset = write_presets(tmp_path / "presets")
    opts = EngineOptions(preset=str(preset), audio_file=music(tmp_path / "m.wav", seconds),
                         output="none", headless=True, osc_port=0, **options)
    with EngineRun(opts, generator=tiny_generator()) as run:
        inject(run.engine)
        report = run.wait()
    return report


def restarted(report, thread):
    return report["threads"]["restarts"].get(thread, 0)


def test_an_exception_in_the_analysis_thread_restarts_it_and_the_show_goes_on(tmp_path):
    def inject(engine):
        engine.worker.submit = FailOnce(engine.worker.submit, at=20)

    report = run_engine(tmp_path, inject)
    assert restarted(report, "analysis") == 1
    assert report["ended"] == {"reason": "the audio file ended", "clean": True}
    # the whole file was analysed (it went on from the clock, not from the top), in time
    assert report["audio"]["seconds_analysed"] == pytest.approx(4.0, abs=0.05)
    assert report["onsets"]["detected"] >= 12
    assert any(e["where"] == "thread analysis" for e in report["errors"])


def test_an_analyzer_that_keeps_failing_is_replaced_and_the_picture_keeps_its_clock(tmp_path):
    def inject(engine):
        analyzer = engine.session.analyzer
        failing = FailOnce(analyzer.process, at=0)
        failing.calls = -10**9                     # never the n-th: use the window below

        def process(block, _orig=analyzer.process, _n=[0]):
            _n[0] += 1
            if 100 <= _n[0] < 110:                 # ten hops in a row
                raise FloatingPointError("injected analyzer fault")
            return _orig(block)

        analyzer.process = process

    report = run_engine(tmp_path, inject)
    assert report["ended"]["clean"] and report["audio"]["seconds_analysed"] == pytest.approx(
        4.0, abs=0.05)
    assert any(e["where"] == "analyzer" for e in report["errors"])
    # the fresh analyzer hears the clicks after the fault
    assert report["onsets"]["detected"] >= 8
    assert report["frames"]["presented"] > 20


def test_an_exception_in_the_generator_thread_restarts_it(tmp_path):
    def inject(engine):
        worker = engine.worker

        class FailingTimes(list):
            calls = 0

            def append(self, value):
                FailingTimes.calls += 1
                if FailingTimes.calls == 3:      # outside the per-frame error handling
                    raise RuntimeError("injected worker fault")
                super().append(value)

        worker.render_times_s = FailingTimes(worker.render_times_s)

    report = run_engine(tmp_path, inject)
    assert restarted(report, "generator") == 1
    assert report["frames"]["generated"] > 10


def test_an_exception_in_the_display_restarts_it(tmp_path):
    from phosphene.render import driver

    original = driver.ChainDriver.draw
    calls = {"n": 0}

    def draw(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:
            raise RuntimeError("injected display fault")
        return original(self, *args, **kwargs)

    def inject(engine):
        driver.ChainDriver.draw = draw

    try:      # the fault is injected in this process: the display runs on a thread here
        report = run_engine(tmp_path, inject, display="thread")
    finally:
        driver.ChainDriver.draw = original
    assert restarted(report, "display") == 1
    assert report["ended"]["clean"]
    assert report["frames"]["presented"] > 30         # frames before and after the restart


def test_a_display_process_that_dies_is_started_again_and_the_show_goes_on(tmp_path):
    import os
    import signal

    killed = {}

    def inject(engine):
        time.sleep(1.0)
        killed["pid"] = engine.display_pid
        killed["frames"] = engine.frame_times.count
        os.kill(engine.display_pid, signal.SIGKILL)      # as a crashing GL driver would

    report = run_engine(tmp_path, inject, seconds=6.0)
    assert restarted(report, "display") == 1
    assert any("display process exited" in f["error"]
               for f in report["threads"]["failures"]), report["threads"]
    assert report["ended"] == {"reason": "the audio file ended", "clean": True}
    # a new process drew on: frames after the kill, and the analysis never stopped
    assert report["frames"]["presented"] > killed["frames"] + 10
    assert report["audio"]["seconds_analysed"] == pytest.approx(6.0, abs=0.05)


def oscsend(port: int, address: str, types: str = "", *args) -> None:
    subprocess.run(["oscsend", "localhost", str(port), address, types, *map(str, args)],
                   check=True, timeout=10)


def test_an_exception_in_the_osc_thread_restarts_it_and_osc_still_works(tmp_path):
    preset = write_presets(tmp_path / "presets")
    opts = EngineOptions(preset=str(preset), audio_file=music(tmp_path / "m.wav", 6.0),
                         output="none", headless=True, osc_port=0)
    with EngineRun(opts, generator=tiny_generator()) as run:
        server = run.engine.osc._server
        server.service_actions = FailOnce(server.service_actions, at=3)
        time.sleep(0.8)                            # the fault happens, the server comes back
        oscsend(run.osc_port, "/phosphene/param/psi", "f", 1.9)
        dump = subprocess.Popen(["oscdump", "-L", "9233"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        oscsend(run.osc_port, "/phosphene/status", "i", 9233)
        time.sleep(0.5)
        dump.terminate()
        status = dump.communicate(timeout=5)[0]
        report = run.wait()
    assert restarted(report, "osc") == 1
    assert report["final"]["parameters"]["psi"] == pytest.approx(1.9, abs=0.05)
    # the status reply counts the restart: ... preset thread_restarts errors overflows age
    line = next(l for l in status.splitlines() if "/phosphene/status" in l)
    assert line.split()[-4:-2] == ["1", "1"], line


def test_an_exception_in_the_audio_watchdog_restarts_it_and_input_goes_on(pulse, tmp_path):
    from phosphene.live.audio.streams import AudioIn

    with AudioIn("pulse", samplerate=SR, blocksize=256) as audio_in:
        assert audio_in.wait_running(timeout=10)
        stop_wait = audio_in._stop.wait
        audio_in._stop.wait = FailOnce(stop_wait, at=3)     # inside the watchdog's loop
        time.sleep(1.0)
        assert audio_in.supervisor.restarts == {"audio-input": 1}
        audio_in._stop.wait = stop_wait
        # the device still delivers, and the restarted watchdog still notices a loss
        audio_in.drain()
        block = np.zeros(256, np.float32)
        assert audio_in.read(block, timeout=2.0)
        pulse.unload_sink()
        deadline = time.monotonic() + 10
        while not audio_in.lost and time.monotonic() < deadline:
            audio_in.read(block, timeout=0.2)
        assert audio_in.lost and audio_in.losses == 1
        pulse.load_sink()


def test_thirty_seconds_of_digital_silence_on_the_virtual_mic_does_not_end_the_show(pulse,
                                                                                     tmp_path):
    """A song ends in exact zeros (the defect that closed the show): music, 30 s of digital
    silence, music again, through the PulseAudio virtual mic. The show runs to the end, with
    no error, and still reacts to the music after the silence."""
    from phosphene.audio_file import load_audio
    from pathlib import Path

    import soxr

    demo = load_audio(Path(__file__).resolve().parents[1] / "examples" / "demo.flac")
    music = soxr.resample(demo.samples.mean(axis=1)[:10 * demo.sample_rate], demo.sample_rate, SR)
    clicks, _ = S.clicks([0.3 + 0.4 * k for k in range(8)], 3.5, amp=0.5)
    signal = np.concatenate([music, np.zeros(30 * SR, np.float32), clicks]).astype(np.float32)
    wav = tmp_path / "song_then_silence.wav"
    sf.write(wav, signal, SR, subtype="FLOAT")
    preset = write_presets(tmp_path / "presets")
    seconds = len(signal) / SR + 1.0
    opts = EngineOptions(preset=str(preset), input="pulse", sample_rate=SR, output="none",
                         headless=True, osc_port=None, duration_s=seconds)
    onsets_at = []
    with EngineRun(opts, generator=tiny_generator()) as run:
        player = pulse.play(wav)
        deadline = time.monotonic() + seconds + 30
        while run.thread.is_alive() and time.monotonic() < deadline:
            onsets_at.append((run.engine.clock / SR, run.engine.counters.onsets))
            time.sleep(0.5)
        report = run.wait()
        player.kill()
    assert report["errors"] == [] and report["threads"]["restarts"] == {}
    assert report["ended"] == {"reason": "the --duration was reached", "clean": True}
    # onsets heard after the silence: the count grows in the last seconds
    before_end = [n for t, n in onsets_at if t < 40.0]
    assert report["onsets"]["detected"] >= (before_end[-1] if before_end else 0) + 4
