"""Keyframes: the latents a scene moves between, resolved to ``w`` arrays ``[num_ws, w_dim]``.

A keyframe is a seed (``z`` from the seed, mapped to ``w``), a point on the great circle between
two seeds' ``z`` (spherical interpolation, then mapped), a saved ``w`` (``.npy`` of shape
``[w_dim]`` or ``[num_ws, w_dim]``), or a captured frame (the ``w`` on screen at that moment).

The director only sees ``w`` arrays; turning ``z`` into ``w`` is the generator's mapping network,
supplied as a ``mapper`` callable so this module does not depend on torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.show.latents import as_ws, slerp, z_from_seed

# z [z_dim] float32 -> w [num_ws, w_dim] float32, untruncated (psi = 1)
Mapper = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SeedKeyframe:
    seed: int


@dataclass(frozen=True)
class SlerpKeyframe:
    seed_a: int
    seed_b: int
    t: float          # 0 = seed_a, 1 = seed_b, along the sphere


@dataclass(frozen=True)
class SavedKeyframe:
    path: str         # relative paths are relative to the preset file's folder


KeyframeSpec = Union[SeedKeyframe, SlerpKeyframe, SavedKeyframe]


def resolve_keyframe(spec: KeyframeSpec, *, mapper: Mapper, z_dim: int, num_ws: int,
                     w_dim: int, base_dir: Path | None = None) -> np.ndarray:
    """One keyframe as ``w`` ``[num_ws, w_dim]`` float32."""
    if isinstance(spec, SeedKeyframe):
        z = z_from_seed(spec.seed, z_dim)
    elif isinstance(spec, SlerpKeyframe):
        z = slerp(z_from_seed(spec.seed_a, z_dim), z_from_seed(spec.seed_b, z_dim), spec.t)
    elif isinstance(spec, SavedKeyframe):
        return load_w(spec.path, num_ws=num_ws, w_dim=w_dim, base_dir=base_dir)
    else:
        raise TypeError(f"not a keyframe spec: {spec!r}")
    return as_ws(mapper(z), num_ws, w_dim)


def resolve_keyframes(specs: "list[KeyframeSpec]", **kwargs) -> list[np.ndarray]:
    return [resolve_keyframe(spec, **kwargs) for spec in specs]


def load_w(path: str | Path, *, num_ws: int, w_dim: int, base_dir: Path | None = None) -> np.ndarray:
    """A saved latent; a clear error names the file and the expected shape."""
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    try:
        # allow_pickle=False: a keyframe file is data, never code
        w = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise PhospheneError(f"keyframe file not found: {p}") from None
    except (ValueError, OSError) as exc:
        raise PhospheneError(f"keyframe file {p} is not a numpy .npy array: {exc}") from None
    try:
        return as_ws(w, num_ws, w_dim)
    except ValueError as exc:
        raise PhospheneError(f"keyframe file {p}: {exc}") from None


def save_w(path: str | Path, w: np.ndarray) -> Path:
    """Save a (captured) keyframe as ``.npy``, atomically so a crash leaves no half file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp.npy")
    np.save(tmp, np.asarray(w, dtype=np.float32), allow_pickle=False)
    tmp.replace(p)
    return p


def mapper_from_generator(G, device=None) -> Mapper:
    """A ``Mapper`` running ``G.mapping`` (untruncated) on one ``z``; imports torch lazily."""
    import torch

    device = device or next(G.parameters()).device

    @torch.no_grad()
    def mapper(z: np.ndarray) -> np.ndarray:
        zt = torch.from_numpy(np.asarray(z, dtype=np.float32)).reshape(1, -1).to(device)
        ws = G.mapping(zt, None, truncation_psi=1.0)
        return ws[0].float().cpu().numpy()

    return mapper
