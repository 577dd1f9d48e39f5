"""The analyzer's feature timeline of a clip, precomputed when the clip enters the bank.

On stage a clip is mixed into the analyzer input, but a preset may also want to follow a clip
exactly (a visual cue on the clip's own onsets) without waiting for the live analysis; and the
offline renderer can use it directly. The timeline is the same streaming analyzer the live loop
runs (``phosphene.live.analyzer``), fed the clip hop by hop, so it matches what live hears.

File: ``<clip>.features.npz`` with one array per ``FeatureFrame`` field (one entry per hop),
plus scalars ``sample_rate`` and ``hop_length``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class AnalyzerUnavailable(RuntimeError):
    """The live analyzer module is not importable (not installed, or not built yet)."""


def _make_analyzer(sample_rate: int):
    """Build the live streaming analyzer for ``sample_rate``; returns (analyzer, hop_length)."""
    try:
        from phosphene.live.analyzer import Analyzer  # the engine's own analyzer
        from phosphene.live.analyzer_settings import AnalyzerSettings
    except ImportError as exc:
        raise AnalyzerUnavailable(f"phosphene.live.analyzer is not available ({exc})") from exc
    analyzer = Analyzer(sample_rate, AnalyzerSettings())
    return analyzer, analyzer.hop_length


def compute_timeline(samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Run the streaming analyzer over ``samples`` (frames, channels) hop by hop.

    Returns one array per ``FeatureFrame`` field, in hop order (the analyzer is causal, so the
    result is exactly what the live loop would compute when the clip starts on a fresh
    analyzer).
    """
    analyzer, hop = _make_analyzer(sample_rate)
    mono = np.asarray(samples, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    n_hops = len(mono) // hop  # a trailing partial hop is not a frame live would emit
    frames = list(analyzer.run(mono[i * hop:(i + 1) * hop] for i in range(n_hops)))
    if not frames:
        raise ValueError("clip is shorter than one analyzer hop")
    fields = [f.name for f in dataclasses.fields(frames[0])]
    timeline = {name: np.array([getattr(fr, name) for fr in frames]) for name in fields}
    timeline["hop_length"] = np.array(hop)
    return timeline


def timeline_bytes(samples: np.ndarray, sample_rate: int) -> bytes | None:
    """The ``.features.npz`` content for a clip, or None when the analyzer is unavailable."""
    try:
        timeline = compute_timeline(samples, sample_rate)
    except AnalyzerUnavailable as exc:
        log.warning("no feature timeline for this clip: %s", exc)
        return None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **timeline)
    return buffer.getvalue()


def load_timeline(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
