"""How a clip's feature timeline is stored in the bank: ``<clip>.features.npz``.

The timeline itself is the live streaming analyzer's output over the clip
(``phosphene.live.analysis.clip_timeline.compute_timeline``). The bank never imports the live
side: a ``Bank`` that writes clips is given that function (``Bank(path,
compute_timeline=...)``) and stores what it returns with ``npz_bytes``.

File: one array per ``FeatureFrame`` field (one entry per hop), plus the scalar ``hop_length``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

# (samples (frames[, channels]) float32, sample rate in Hz) -> {field name: array per hop}
ComputeTimeline = Callable[[np.ndarray, int], Mapping[str, np.ndarray]]


def npz_bytes(timeline: Mapping[str, np.ndarray]) -> bytes:
    """The ``.features.npz`` content for a computed timeline."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **timeline)
    return buffer.getvalue()


def load_timeline(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
