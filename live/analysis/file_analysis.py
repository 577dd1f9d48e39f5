"""Run the streaming analyzer over a whole file — exactly the hops live input would give — and
collect the result as arrays for reports, plots and tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.settings import AnalyzerSettings
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.audio.file_source import FileSource

# FeatureFrame fields that are numbers, in table order
NUMERIC_FIELDS = ("rms_dbfs", "level", "onset_strength", "low", "mid", "high", "centroid_hz",
                  "flatness", "tempo_bpm", "beat_phase")
FLAG_FIELDS = ("onset", "beat", "gated")


@dataclass
class FileAnalysis:
    path: Path
    sample_rate: int
    hop_length: int
    latency_samples: int
    onset_delay_samples: int
    frames: list[FeatureFrame]
    signal: np.ndarray = field(repr=False)  # the mono samples that were analysed

    @property
    def times_s(self) -> np.ndarray:
        """End time of each hop: the time each frame was (or would have been) emitted live."""
        return np.array([f.time_s for f in self.frames])

    def column(self, name: str) -> np.ndarray:
        return np.array([getattr(f, name) for f in self.frames], dtype=float)

    def _event_times(self, flag: str) -> np.ndarray:
        """Times of flagged hops moved back by the detection delay, so they line up with the
        sound that caused them (what `aubioonset` and mir_eval expect)."""
        delay = self.onset_delay_samples / self.sample_rate
        times = np.array([f.time_s for f in self.frames if getattr(f, flag)]) - delay
        return np.maximum(times, 0.0)

    @property
    def onset_times_s(self) -> np.ndarray:
        return self._event_times("onset")

    @property
    def beat_times_s(self) -> np.ndarray:
        return self._event_times("beat")

    @property
    def tempo_bpm(self) -> float:
        """The tempo the tracker held over the second half of the file (median), 0 if never
        locked."""
        tempi = self.column("tempo_bpm")
        half = tempi[len(tempi) // 2:]
        locked = half[half > 0] if np.any(half > 0) else tempi[tempi > 0]
        return float(np.median(locked)) if len(locked) else 0.0

    def frame_records(self) -> list[dict]:
        """One JSON-ready dict per hop (``-inf`` dBFS becomes None)."""
        out = []
        for f in self.frames:
            rec = {"time_s": round(f.time_s, 6), "sample_index": f.sample_index}
            for name in NUMERIC_FIELDS:
                v = float(getattr(f, name))
                rec[name] = round(v, 6) if math.isfinite(v) else None
            for name in FLAG_FIELDS:
                rec[name] = bool(getattr(f, name))
            out.append(rec)
        return out


def analyze_file(path: str | Path, settings: AnalyzerSettings | None = None,
                 channel: int | None = None) -> FileAnalysis:
    source = FileSource(path, channel=channel)
    analyzer = Analyzer(source.sample_rate, settings)
    frames = list(analyzer.run(source.blocks(analyzer.hop_length)))
    return FileAnalysis(path=source.path, sample_rate=source.sample_rate,
                        hop_length=analyzer.hop_length, latency_samples=analyzer.latency_samples,
                        onset_delay_samples=analyzer.onset_delay_samples, frames=frames,
                        signal=source.mono)
