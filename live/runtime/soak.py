"""The soak benchmark: a long live show with everything a gig does to it, measured.

Music loops into the input (played to an output device that feeds it: on a machine without a
sound card, a PulseAudio null sink whose monitor is the default source), while a cue script
sends what a performer would: OSC parameter changes and keyframe steps every few seconds,
effect switches, a preset switch every half minute, a clip from a bank every twenty seconds.
Every ten seconds it samples the process's resident memory and thread count. At the end it
reports the memory slope (MB per hour, fitted after a warm-up), the thread counts, the frame
time percentiles, thread restarts and the errors of the run (none should be there that the
cues did not cause).

``phosphene bench soak --minutes 60`` runs it; figures belong in docs/benchmarks.md.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phosphene.audio_file import load_audio
from phosphene.live.runtime.engine import Engine, EngineOptions
from phosphene.models.bank import Bank

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 10.0
WARM_UP_S = 120.0            # memory settles (caches, the first preset switches) before the fit
CUE_EVERY_S = 3.0
PRESET_EVERY_S = 30.0
CLIP_EVERY_S = 20.0
PRESET_CYCLE = ("default", "showcase", "notebook")


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (this one by default) in MB (Linux /proc); 0 when it
    is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except FileNotFoundError:
        return 0.0
    return float("nan")


def show_rss_mb(engine) -> float:
    """The show's resident memory: the engine's process and its display process."""
    child = engine.display_pid
    return rss_mb() + (rss_mb(child) if child is not None else 0.0)


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def start_show(engine: Engine, name: str, timeout_s: float = 120.0
               ) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``engine`` on a thread and wait for its first frame on screen; returns the thread
    and a dict that gets the run report (``"report"``) when the show ends."""
    done: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: done.update(report=engine.run()), name=name,
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not engine.ready.is_set():
        if not thread.is_alive() or time.monotonic() > deadline:
            thread.join(1)
            raise RuntimeError("the engine did not start (see the log above)")
        time.sleep(0.05)
    return thread, done


@dataclass
class SoakResult:
    minutes: float
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, rss MB, threads)
    cues: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def rss_slope_mb_per_h(self) -> float | None:
        points = [(t, m) for t, m, _ in self.samples if t >= min(WARM_UP_S, self.minutes * 30)]
        if len(points) < 3:
            return None
        t, m = np.array(points).T
        return float(np.polyfit(t / 3600.0, m, 1)[0])

    def summary(self) -> dict[str, Any]:
        frames = self.report.get("frames", {})
        threads = [n for _, _, n in self.samples]
        rss = [m for _, m, _ in self.samples]
        return {
            "minutes": round(self.minutes, 2),
            "rss_start_mb": round(rss[0], 1) if rss else None,
            "rss_end_mb": round(rss[-1], 1) if rss else None,
            "rss_slope_mb_per_h": None if self.rss_slope_mb_per_h() is None
            else round(self.rss_slope_mb_per_h(), 1),
            "threads_min": min(threads) if threads else None,
            "threads_max": max(threads) if threads else None,
            "frame_time_ms": frames.get("frame_time_ms"),
            "fps": frames.get("fps"),
            "generated": frames.get("generated"),
            "thread_restarts": self.report.get("threads", {}).get("restarts", {}),
            "errors": self.report.get("errors", []),
            "audio": {k: self.report.get("audio", {}).get(k)
                      for k in ("overflows", "losses", "seconds_analysed")},
            "cues": dict(self.cues),
            "ended": self.report.get("ended"),
        }


class MusicLoop:
    """Loops ``samples`` into an output device (the virtual mic's sink)."""

    def __init__(self, path: Path, device: str | None):
        import sounddevice as sd  # PortAudio: only when the soak runs

        audio = load_audio(path)
        self._x = np.ascontiguousarray(audio.samples, dtype=np.float32)
        self._pos = 0
        self.stream = sd.OutputStream(device=device, samplerate=audio.sample_rate,
                                      channels=self._x.shape[1], dtype="float32",
                                      callback=self._callback, latency="high")

    def _callback(self, outdata, frames, time_info, status) -> None:
        n, x = 0, self._x
        while n < frames:
            take = min(frames - n, len(x) - self._pos)
            outdata[n:n + take] = x[self._pos:self._pos + take]
            n += take
            self._pos = (self._pos + take) % len(x)


def _make_bank(folder: Path, music: Path) -> Path:
    """A bank with two clips cut from the music (what pregeneration would have made)."""
    audio = load_audio(music)
    bank = Bank(folder, create=True)
    sr = audio.sample_rate
    for name, start in (("hit", 1.0), ("phrase", 4.0)):
        clip = audio.samples[int(start * sr):int((start + 3.0) * sr)]
        bank.add(name, clip, sr, source={"backend": "soak"})
    return folder


def run_soak(minutes: float, *, music: Path, input: str | None, play_to: str | None,
             size: tuple[int, int] | None = None, preset: str = "default",
             seed: int = 0, progress=print) -> SoakResult:
    """Run the soak for ``minutes``; ``progress`` gets a line every sample."""
    from pythonosc.udp_client import SimpleUDPClient

    rng = random.Random(seed)
    result = SoakResult(minutes)
    with tempfile.TemporaryDirectory(prefix="phosphene-soak-") as tmp:
        bank = _make_bank(Path(tmp) / "bank", music)
        options = EngineOptions(preset=preset, input=input, output=play_to, bank=bank,
                                headless=True, osc_port=0, size=size,
                                duration_s=minutes * 60.0)
        engine = Engine(options)
        thread, done = start_show(engine, "soak-engine")
        player = MusicLoop(music, play_to)
        player.stream.start()
        osc = SimpleUDPClient(*engine.osc_address)
        start = time.monotonic()
        next_sample = next_cue = start
        next_preset, next_clip = start + PRESET_EVERY_S, start + CLIP_EVERY_S
        preset_index = 0
        cues = result.cues
        try:
            while thread.is_alive():
                now = time.monotonic()
                if now >= next_cue:
                    next_cue += CUE_EVERY_S
                    kind = rng.choice(("psi", "speed", "keyframe", "flash"))
                    if kind == "psi":
                        osc.send_message("/phosphene/param/psi", rng.uniform(0.3, 1.2))
                    elif kind == "speed":
                        osc.send_message("/phosphene/param/speed", rng.uniform(0.2, 2.0))
                    elif kind == "keyframe":
                        osc.send_message("/phosphene/keyframe/next", [])
                    else:
                        osc.send_message("/phosphene/effect/flash/enable", rng.randint(0, 1))
                    cues[kind] = cues.get(kind, 0) + 1
                if now >= next_preset:
                    next_preset += PRESET_EVERY_S
                    preset_index = (preset_index + 1) % len(PRESET_CYCLE)
                    osc.send_message("/phosphene/preset/load", PRESET_CYCLE[preset_index])
                    cues["preset"] = cues.get("preset", 0) + 1
                if now >= next_clip:
                    next_clip += CLIP_EVERY_S
                    osc.send_message("/phosphene/clip/play", rng.choice(("hit", "phrase")))
                    cues["clip"] = cues.get("clip", 0) + 1
                if now >= next_sample:
                    next_sample += SAMPLE_EVERY_S
                    sample = (now - start, show_rss_mb(engine), os_threads())
                    result.samples.append(sample)
                    progress(f"soak {sample[0] / 60:6.1f} min  rss {sample[1]:7.1f} MB  "
                             f"threads {sample[2]:3d}  frames {engine.frame_times.count}")
                time.sleep(0.05)
        finally:
            player.stream.stop()
            player.stream.close()
            engine.stop()
            thread.join(30)
        result.report = done.get("report", {})
    return result
