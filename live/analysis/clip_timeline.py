"""A clip's feature timeline: the streaming analyzer run over the whole clip, hop by hop.

Computed when a clip enters the bank, so a preset may follow a clip exactly (a visual cue on the
clip's own onsets) without waiting for the live analysis, and the offline renderer can use it
directly. It is the same analyzer the live loop runs, so it matches what live hears.

The bank (``phosphene.models.bank``) stores the result but never imports the live side: whoever
writes clips passes this function in, ``Bank(path, compute_timeline=compute_timeline)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.settings import AnalyzerSettings


def compute_timeline(samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Run the streaming analyzer over ``samples`` (frames[, channels]) at ``sample_rate`` Hz.

    Returns one array per ``FeatureFrame`` field, one entry per hop in hop order, plus the
    scalar ``hop_length``. The analyzer is causal, so the result is exactly what the live loop
    computes when the clip starts on a fresh analyzer; a trailing partial hop is not a frame
    live would emit and is left out. ``ValueError`` if the clip is shorter than one hop.
    """
    analyzer = Analyzer(sample_rate, AnalyzerSettings())
    hop = analyzer.hop_length
    mono = np.asarray(samples, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    n_hops = len(mono) // hop
    frames = list(analyzer.run(mono[i * hop:(i + 1) * hop] for i in range(n_hops)))
    if not frames:
        raise ValueError("clip is shorter than one analyzer hop")
    fields = [f.name for f in dataclasses.fields(frames[0])]
    timeline = {name: np.array([getattr(fr, name) for fr in frames]) for name in fields}
    timeline["hop_length"] = np.array(hop)
    return timeline
