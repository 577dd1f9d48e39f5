"""Run the streaming analyzer over a whole file — exactly the hops live input would give — and
collect the result as arrays for reports, plots and tests.

The file is read a block at a time (``AudioFileStream``) and only what the reports need is
kept: one row of features per hop and the waveform's min/max per hop for the plot, never the
signal. A two-hour set keeps about 100 bytes per 5.8 ms hop (~125 MB) instead of the whole
recording (1.3 GB as float32 mono, more before the mixdown).
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from phosphene.audio_file import STREAM_BLOCK_FRAMES, AudioFileStream
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.settings import AnalyzerSettings

# FeatureFrame fields that are numbers, in table order
NUMERIC_FIELDS = ("rms_dbfs", "level", "onset_strength", "low", "mid", "high", "centroid_hz",
                  "flatness", "tempo_bpm", "beat_phase")
FLAG_FIELDS = ("onset", "beat", "gated")


@dataclass
class FileAnalysis:
    """The analyzer's frames for a file, as columns: ``column(name)`` for any FeatureFrame
    field in ``NUMERIC_FIELDS`` or ``FLAG_FIELDS``, one value per hop."""

    path: Path
    sample_rate: int
    hop_length: int
    latency_samples: int
    onset_delay_samples: int
    n_samples: int                             # samples in the file (per channel)
    sample_index: np.ndarray = field(repr=False)   # (n_hops,) int64: each frame's stamp
    columns: dict[str, np.ndarray] = field(repr=False)
    # the waveform analysed (the mono mix or the chosen channel), min and max of each hop
    wave_min: np.ndarray = field(repr=False)
    wave_max: np.ndarray = field(repr=False)

    @property
    def n_hops(self) -> int:
        return len(self.sample_index)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def times_s(self) -> np.ndarray:
        """End time of each hop: the time each frame was (or would have been) emitted live."""
        return self.sample_index / self.sample_rate

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.columns[name], dtype=float)

    def _event_times(self, flag: str) -> np.ndarray:
        """Times of flagged hops moved back by the detection delay, so they line up with the
        sound that caused them (what `aubioonset` and mir_eval expect)."""
        delay = self.onset_delay_samples / self.sample_rate
        times = self.times_s[self.columns[flag]] - delay
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

    def frame_records(self) -> Iterator[dict]:
        """One JSON-ready dict per hop, in order (``-inf`` dBFS becomes None); made as they
        are asked for, so a long file's table is never built whole."""
        sr = self.sample_rate
        numeric = [(name, self.columns[name]) for name in NUMERIC_FIELDS]
        flags = [(name, self.columns[name]) for name in FLAG_FIELDS]
        for i, sample_index in enumerate(self.sample_index.tolist()):
            rec = {"time_s": round(sample_index / sr, 6), "sample_index": sample_index}
            for name, values in numeric:
                v = float(values[i])
                rec[name] = round(v, 6) if math.isfinite(v) else None
            for name, values in flags:
                rec[name] = bool(values[i])
            yield rec


def write_json(doc: dict, frames: Iterator[dict] | None, out: TextIO) -> None:
    """``json.dump(doc | {"frames": list(frames)}, out)``, byte for byte, with the frames
    written one at a time (``frames`` None: no "frames" key)."""
    head = json.dumps(doc)
    if frames is None:
        out.write(head)
        return
    out.write(head[:-1] + (", " if doc else "") + '"frames": [')
    for i, rec in enumerate(frames):
        if i:
            out.write(", ")
        out.write(json.dumps(rec))
    out.write("]}")


def analyze_file(path: str | Path, settings: AnalyzerSettings | None = None,
                 channel: int | None = None,
                 block_frames: int = STREAM_BLOCK_FRAMES) -> FileAnalysis:
    """Analyze ``path`` (the mono mix, or ``channel``) hop by hop, reading ``block_frames``
    frames at a time."""
    with AudioFileStream(path, block_frames) as stream:
        analyzer = Analyzer(stream.sample_rate, settings)
        columns = {name: array("d") for name in NUMERIC_FIELDS}
        flags = {name: bytearray() for name in FLAG_FIELDS}
        stamps, wave_min, wave_max = array("q"), array("f"), array("f")
        numeric_cols = [(name, columns[name].append) for name in NUMERIC_FIELDS]
        flag_cols = [(name, flags[name].append) for name in FLAG_FIELDS]
        for block in stream.mono_hops(analyzer.hop_length, channel):
            frame = analyzer.process(block)
            stamps.append(frame.sample_index)
            for name, append in numeric_cols:
                append(getattr(frame, name))
            for name, append in flag_cols:
                append(1 if getattr(frame, name) else 0)
            wave_min.append(block.min())
            wave_max.append(block.max())
        n_samples = stream.frames_read
    cols = {name: np.frombuffer(values, dtype=np.float64) for name, values in columns.items()}
    cols.update({name: np.frombuffer(values, dtype=np.uint8).astype(bool)
                 for name, values in flags.items()})
    return FileAnalysis(path=stream.path, sample_rate=stream.sample_rate,
                        hop_length=analyzer.hop_length, latency_samples=analyzer.latency_samples,
                        onset_delay_samples=analyzer.onset_delay_samples, n_samples=n_samples,
                        sample_index=np.frombuffer(stamps, dtype=np.int64), columns=cols,
                        wave_min=np.frombuffer(wave_min, dtype=np.float32),
                        wave_max=np.frombuffer(wave_max, dtype=np.float32))
