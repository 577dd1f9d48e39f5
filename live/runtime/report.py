"""What a live run reports: frame timing, audio health, onsets and their latency to the screen,
control traffic, errors, and where every parameter ended up (``phosphene live --report``).

``FrameTimes`` and ``OnsetLatency`` are fed by the display loop (wall clock: these are shell
measurements, not part of the deterministic core); ``build_report`` assembles the JSON.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def percentiles_ms(seconds: "list[float] | array | np.ndarray") -> dict[str, float | None]:
    """p50/p95/p99/max of durations given in seconds, in milliseconds (None when empty)."""
    x = np.asarray(seconds, dtype=np.float64)
    if x.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": round(1000 * p50, 3), "p95": round(1000 * p95, 3),
            "p99": round(1000 * p99, 3), "max": round(1000 * float(x.max()), 3)}


class FrameTimes:
    """Times of presented frames (``time.monotonic()``), for fps and frame-time percentiles."""

    def __init__(self) -> None:
        self._times = array("d")

    def add(self, t: float) -> None:
        self._times.append(t)

    @property
    def count(self) -> int:
        return len(self._times)

    def intervals(self) -> np.ndarray:
        return np.diff(np.frombuffer(self._times, dtype=np.float64)) if self.count > 1 \
            else np.zeros(0)

    def fps(self) -> float:
        if self.count < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (self.count - 1) / span if span > 0 else 0.0

    def recent(self, seconds: float = 1.0) -> tuple[float, float]:
        """(fps, mean frame ms) over the last ``seconds`` (for ``/phosphene/status``)."""
        times = self._times
        n = len(times)
        if n < 2:
            return 0.0, 0.0
        end = times[-1]
        i = n - 1
        while i > 0 and end - times[i - 1] <= seconds:
            i -= 1
        frames = n - 1 - i
        if frames <= 0:
            return 0.0, 0.0
        span = end - times[i]
        return frames / span, 1000.0 * span / frames


class OnsetLatency:
    """Onset -> screen latency, measured on the running show.

    The analysis thread calls ``onset(sample_index, arrived_at)`` when a hop flags an onset
    (``arrived_at``: when that hop's audio reached the engine). The display loop calls
    ``presented(t, state_sample, generator_sample)`` after each frame: the first frame drawn
    from a show state at or after the onset's hop is the *effects path* (a flash mapped to the
    onset shows on it); the first frame whose generator picture was made from a request at or
    after it is the *GAN path*.
    """

    def __init__(self, max_pending: int = 64) -> None:
        self._lock = threading.Lock()
        self._effects_pending: list[tuple[int, float]] = []
        self._gan_pending: list[tuple[int, float]] = []
        self.effects_s = array("d")
        self.gan_s = array("d")
        self.count = 0
        self._max = max_pending

    def onset(self, sample_index: int, arrived_at: float) -> None:
        with self._lock:
            self.count += 1
            for pending in (self._effects_pending, self._gan_pending):
                pending.append((sample_index, arrived_at))
                del pending[:-self._max]      # a stalled display cannot grow this

    def presented(self, t: float, state_sample: int, generator_sample: int | None) -> None:
        with self._lock:
            self._resolve(self._effects_pending, self.effects_s, t, state_sample)
            if generator_sample is not None:
                self._resolve(self._gan_pending, self.gan_s, t, generator_sample)

    @staticmethod
    def _resolve(pending: list, out: array, t: float, sample: int) -> None:
        while pending and pending[0][0] <= sample:
            _, arrived = pending.pop(0)
            out.append(max(t - arrived, 0.0))

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {"onsets_measured": {"effects": len(self.effects_s), "gan": len(self.gan_s)},
                    "effects_path_ms": percentiles_ms(self.effects_s),
                    "gan_path_ms": percentiles_ms(self.gan_s)}


class RenderLatency:
    """From a hop's audio to the generator picture made from it on screen, frame by frame:
    the lookahead a quantized action fires early by, so that it lands on the line
    (``show/quantize.py``). Unlike the onset latency it needs no onsets: every frame whose
    picture comes from a new hop gives a figure.

    The analysis thread calls ``hop(sample_index, arrived_at)``; the display side
    ``presented(t, generator_sample)``. Both write preallocated rings (bounded over a long
    show); ``recent_s()`` is the median of the last ``window`` figures."""

    def __init__(self, hop_length: int, slots: int = 1024, window: int = 64) -> None:
        self.hop_length = max(int(hop_length), 1)
        self._samples = np.full(slots, -1, dtype=np.int64)
        self._arrived = np.zeros(slots, dtype=np.float64)
        self._recent = np.zeros(window, dtype=np.float64)
        self._count = 0
        self._last_sample = -1

    def hop(self, sample_index: int, arrived_at: float) -> None:
        slot = (sample_index // self.hop_length) % self._samples.size
        self._arrived[slot] = arrived_at
        self._samples[slot] = sample_index

    def presented(self, t: float, generator_sample: int | None) -> None:
        if generator_sample is None or generator_sample == self._last_sample:
            return                       # the same picture again: its latency was counted
        arrived = self._arrival(generator_sample)
        if arrived is None:
            return                       # too old: its hop's slot was reused
        # The picture shows every hop since the previous picture: the generator takes the
        # newest request, so a change made at a hop in between waits for it too. A change
        # lands at a hop anywhere in there: the figure is the latency of the middle one.
        first = self._arrival(self._last_sample + self.hop_length) \
            if self._last_sample >= 0 else None
        if first is not None and first <= arrived:
            arrived = 0.5 * (first + arrived)
        self._last_sample = generator_sample
        self._recent[self._count % self._recent.size] = max(t - arrived, 0.0)
        self._count += 1

    def _arrival(self, sample_index: int) -> float | None:
        slot = (sample_index // self.hop_length) % self._samples.size
        return float(self._arrived[slot]) if self._samples[slot] == sample_index else None

    def recent_s(self) -> float | None:
        n = min(self._count, self._recent.size)
        return float(np.median(self._recent[:n])) if n else None


class AudioAge:
    """How old each hop's audio was when its analysis was done: from the moment the audio
    callback delivered the hop's last sample (a file: when it would have arrived live) to the
    end of its analysis. Audio that waited in the input ring because the analysis fell behind
    shows here, however fresh the samples look to the analyzer.

    Kept as a histogram of whole milliseconds (bounded memory over a night-long show)."""

    MAX_MS = 10_000
    LATE_MS = 50.0          # the target: analysed audio never older than this

    def __init__(self) -> None:
        self._counts = np.zeros(self.MAX_MS + 1, dtype=np.int64)
        self.count = 0
        self.late = 0                 # hops older than LATE_MS
        self.max_s = 0.0
        self.newest_s = 0.0           # the newest hop's age (``/phosphene/status``)

    def add(self, age_s: float) -> None:
        age_s = max(age_s, 0.0)
        self._counts[min(int(age_s * 1000.0), self.MAX_MS)] += 1
        self.count += 1
        self.newest_s = age_s
        if age_s > self.max_s:
            self.max_s = age_s
        if age_s * 1000.0 > self.LATE_MS:
            self.late += 1

    def percentile_ms(self, q: float) -> float | None:
        if self.count == 0:
            return None
        rank = q / 100.0 * (self.count - 1)
        # the middle of the 1 ms bin the rank falls in
        return float(np.searchsorted(np.cumsum(self._counts), rank, side="right")) + 0.5

    def summary(self) -> dict[str, Any]:
        return {"p50_ms": self.percentile_ms(50), "p99_ms": self.percentile_ms(99),
                "max_ms": round(1000.0 * self.max_s, 2) if self.count else None,
                "hops": self.count, "older_than_50ms": self.late}


class ErrorLog:
    """Errors of a run, counted by where and what (bounded: a repeating error is one entry)."""

    def __init__(self, max_entries: int = 100) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._max = max_entries

    def add(self, where: str, message: str) -> bool:
        """Count an error; True the first time this (where, message) is seen, so a caller
        logs a repeating error once instead of every frame."""
        key = (where, message[:300])
        with self._lock:
            first = key not in self._counts
            if not first or len(self._counts) < self._max:
                self._counts[key] += 1
            else:
                self._counts[(where, "<further errors>")] += 1
        return first

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"where": w, "message": m, "count": c} for (w, m), c in self._counts.items()]

    def __len__(self) -> int:
        return sum(self._counts.values())


def _finite(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


def build_report(**sections: Any) -> dict[str, Any]:
    """The report document: the sections given, with numbers made JSON-safe."""
    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, (bool, str)) or obj is None:
            return obj
        if isinstance(obj, (int, np.integer)):
            return int(obj)
        if isinstance(obj, (float, np.floating)):
            return _finite(float(obj))
        return str(obj)

    return clean(dict(sections))


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    """Write the report as JSON atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
