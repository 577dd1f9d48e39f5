"""Keyframes: the latents a scene moves between, resolved to ``w`` arrays ``[num_ws, w_dim]``.

A keyframe is a seed (``z`` from the seed, mapped to ``w``), a point on the great circle between
two seeds' ``z`` (spherical interpolation, then mapped), a saved ``w`` (``.npy`` of shape
``[w_dim]`` or ``[num_ws, w_dim]``, or one entry of a keyframe library ``.npz``), an image
projected into the model (the ``w`` whose frame resembles it), or a captured frame (the ``w``
on screen at that moment).

The director only sees ``w`` arrays; turning ``z`` into ``w`` is the generator's mapping network,
supplied as a ``mapper`` callable, and projecting an image is a ``projector`` callable (the
runtime supplies one that caches, ``models/latent/projection_cache.py``), so this module does
not depend on torch.

**Keyframe library** (``.npz``): named keyframes, one array ``[num_ws, w_dim]`` float32 per
name, in order (``np.savez``; read with ``allow_pickle=False``). ``phosphene models keyframes
export`` writes one from a preset, ``phosphene models project`` writes one entry, and a preset
imports an entry with ``- w: library.npz`` + ``key: NAME``.
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
# (image file, steps, w_plus) -> w [num_ws, w_dim] float32
Projector = Callable[[Path, int, bool], np.ndarray]


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
    key: str | None = None    # the entry of a keyframe library (.npz)


@dataclass(frozen=True)
class ProjectedKeyframe:
    path: str         # an image; relative paths are relative to the preset file's folder
    steps: int = 500
    w_plus: bool = False


KeyframeSpec = Union[SeedKeyframe, SlerpKeyframe, SavedKeyframe, ProjectedKeyframe]


def keyframe_name(spec: KeyframeSpec) -> str:
    """A readable name for a keyframe (what a library export calls it): the file's stem or the
    library key, ``seed-N``, ``slerp-A-B-T``."""
    if isinstance(spec, SeedKeyframe):
        return f"seed-{spec.seed}"
    if isinstance(spec, SlerpKeyframe):
        return f"slerp-{spec.seed_a}-{spec.seed_b}-{spec.t:g}"
    if isinstance(spec, SavedKeyframe) and spec.key is not None:
        return spec.key
    return Path(spec.path).stem


def resolve_keyframe(spec: KeyframeSpec, *, mapper: Mapper, z_dim: int, num_ws: int,
                     w_dim: int, base_dir: Path | None = None,
                     projector: Projector | None = None) -> np.ndarray:
    """One keyframe as ``w`` ``[num_ws, w_dim]`` float32."""
    if isinstance(spec, SeedKeyframe):
        z = z_from_seed(spec.seed, z_dim)
    elif isinstance(spec, SlerpKeyframe):
        z = slerp(z_from_seed(spec.seed_a, z_dim), z_from_seed(spec.seed_b, z_dim), spec.t)
    elif isinstance(spec, SavedKeyframe):
        return load_w(spec.path, num_ws=num_ws, w_dim=w_dim, base_dir=base_dir, key=spec.key)
    elif isinstance(spec, ProjectedKeyframe):
        if projector is None:
            raise PhospheneError(f"project keyframe {spec.path}: projecting needs the generator "
                                 "(no projector was given)")
        image = _under(spec.path, base_dir)
        try:
            return as_ws(projector(image, spec.steps, spec.w_plus), num_ws, w_dim)
        except ValueError as exc:
            raise PhospheneError(f"project keyframe {image}: {exc}") from None
    else:
        raise TypeError(f"not a keyframe spec: {spec!r}")
    return as_ws(mapper(z), num_ws, w_dim)


def resolve_keyframes(specs: "list[KeyframeSpec]", **kwargs) -> list[np.ndarray]:
    return [resolve_keyframe(spec, **kwargs) for spec in specs]


def _under(path: str | Path, base_dir: Path | None) -> Path:
    p = Path(path)
    return base_dir / p if not p.is_absolute() and base_dir is not None else p


def load_w(path: str | Path, *, num_ws: int, w_dim: int, base_dir: Path | None = None,
           key: str | None = None) -> np.ndarray:
    """A saved latent (``.npy``, or entry ``key`` of a keyframe library ``.npz``); a clear
    error names the file and the expected shape."""
    p = _under(path, base_dir)
    if p.suffix == ".npz" or key is not None:
        library = load_library(p)
        if key is None:
            if len(library) != 1:
                raise PhospheneError(f"keyframe library {p} holds {len(library)} keyframes; "
                                     f"pick one with key: (one of {', '.join(library)})")
            key = next(iter(library))
        if key not in library:
            raise PhospheneError(f"keyframe library {p} has no keyframe {key!r}; it holds: "
                                 f"{', '.join(library) or 'none'}")
        w = library[key]
    else:
        try:
            # allow_pickle=False: a keyframe file is data, never code
            w = np.load(p, allow_pickle=False)
        except FileNotFoundError:
            raise PhospheneError(f"keyframe file not found: {p}") from None
        except (ValueError, OSError) as exc:
            raise PhospheneError(f"keyframe file {p} is not a numpy .npy array: {exc}") from None
        if not isinstance(w, np.ndarray):
            raise PhospheneError(f"keyframe file {p} is not a numpy .npy array (an .npz "
                                 "library? name it .npz)")
    try:
        return as_ws(w, num_ws, w_dim)
    except ValueError as exc:
        raise PhospheneError(f"keyframe file {p}: {exc}") from None


def load_library(path: str | Path) -> dict[str, np.ndarray]:
    """A keyframe library: name -> ``w`` float32, in the file's order."""
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
        if not hasattr(data, "files"):
            raise ValueError("a single array, not an .npz library")
        with data:
            return {name: np.asarray(data[name], dtype=np.float32) for name in data.files}
    except FileNotFoundError:
        raise PhospheneError(f"keyframe library not found: {p}") from None
    except (ValueError, OSError) as exc:
        raise PhospheneError(f"keyframe library {p} is not a numpy .npz file: {exc}") from None


def unique_names(names: "list[str]") -> list[str]:
    """``names`` with repeats told apart (``a``, ``a-2``, ``a-3``): library keys are unique."""
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in out:
            n += 1
            candidate = f"{name}-{n}"
        out.append(candidate)
    return out


def save_library(path: str | Path, keyframes: "list[tuple[str, np.ndarray]]") -> Path:
    """Write named keyframes as a library ``.npz`` (atomically), in order; repeated names get
    a suffix."""
    p = Path(path)
    if p.suffix != ".npz":
        raise PhospheneError(f"{p}: a keyframe library is an .npz file")
    names = unique_names([name for name, _ in keyframes])
    arrays = {name: np.asarray(w, dtype=np.float32) for name, (_, w) in zip(names, keyframes)}
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp.npz")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)
    tmp.replace(p)
    return p


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
