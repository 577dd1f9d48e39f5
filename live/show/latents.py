"""Latent-space arithmetic the director is made of: pure numpy functions over w arrays.

Shapes: ``z`` is ``[z_dim]``; a per-layer latent ``w`` is ``[num_ws, w_dim]`` float32 (one row
per synthesis layer input, as ``G.mapping`` returns for one sample).
"""

from __future__ import annotations

import math

import numpy as np

# the w-row layer groups are shared with the direction tools in models/ (pure Python)
from phosphene.models.latent.layers import LAYER_GROUPS, layer_rows  # noqa: F401

EASINGS = ("linear", "cosine", "smoothstep")


def z_from_seed(seed: int, z_dim: int) -> np.ndarray:
    """The latent z of an integer seed, ``[z_dim]`` float32.

    Drawn as NVlabs' ``generate.py`` does (``RandomState(seed).randn``), so seed numbers name
    the same images as in other StyleGAN tools.
    """
    return np.random.RandomState(int(seed) % (2 ** 32)).randn(z_dim).astype(np.float32)


def slerp(z0: np.ndarray, z1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation: keeps ``|z|`` near the Gaussian shell where the mapping was
    trained, where a straight line would cut through the low-density centre."""
    a, b = z0.astype(np.float64), z1.astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0:
        return ((1.0 - t) * a + t * b).astype(np.float32)
    cos_omega = float(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    omega = math.acos(cos_omega)
    if omega < 1e-6:
        return ((1.0 - t) * a + t * b).astype(np.float32)
    s = math.sin(omega)
    return ((math.sin((1.0 - t) * omega) / s) * a + (math.sin(t * omega) / s) * b).astype(np.float32)


def lerp(w0: np.ndarray, w1: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Linear interpolation in W; ``t`` may be per-row (``[num_ws, 1]``) for layer-wise mixing."""
    return (w0 + (w1 - w0) * np.asarray(t, dtype=np.float32)).astype(np.float32, copy=False)


def ease(t: float, kind: str = "cosine") -> float:
    """Map transition progress 0..1 to an eased 0..1 (starts and lands softly)."""
    t = min(max(t, 0.0), 1.0)
    if kind == "linear":
        return t
    if kind == "cosine":
        return 0.5 - 0.5 * math.cos(math.pi * t)
    if kind == "smoothstep":
        return t * t * (3.0 - 2.0 * t)
    raise ValueError(f"unknown easing {kind!r}; allowed: {', '.join(EASINGS)}")


def truncate(w: np.ndarray, w_avg: np.ndarray | None, psi: float) -> np.ndarray:
    """The truncation trick in W: pull ``w`` toward the average latent by ``psi``."""
    if w_avg is None or psi == 1.0:
        return w
    return lerp(w_avg.astype(np.float32), w, psi)


def as_ws(w: np.ndarray, num_ws: int, w_dim: int) -> np.ndarray:
    """Accept a saved latent as ``[w_dim]`` (one w for every layer) or ``[num_ws, w_dim]``."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim == 3 and w.shape[0] == 1:      # a batch of one, as G.mapping returns
        w = w[0]
    if w.shape == (w_dim,):
        return np.repeat(w[None, :], num_ws, axis=0)
    if w.shape == (num_ws, w_dim):
        return w.copy()
    raise ValueError(f"a w latent must have shape [{w_dim}] or [{num_ws}, {w_dim}], got "
                     f"{list(w.shape)}")
