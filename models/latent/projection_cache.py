"""Projected keyframes, computed once and kept in the user cache.

A preset's ``- project: photo.png`` keyframe is a projection (``projection.py``): minutes on a
CPU, seconds on a GPU. The result is stored under ``<cache>/projections/`` keyed by what
decides it: the generator's content (its weights and architecture, hashed), the image file's
content, the number of steps, ``w`` or ``w+``, the loss and this code's version. A later load
of the same preset (or any preset projecting the same image into the same model) reads the
file back in milliseconds; changing any of those computes it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.models.cache import cache_root

log = logging.getLogger(__name__)

# bump when a change to projection.py changes its results: old cache entries are then unused
PROJECTION_VERSION = 1

# (image path, steps, w_plus) -> w [num_ws, w_dim] float32
Projector = Callable[[Path, int, bool], np.ndarray]


def projection_cache_dir() -> Path:
    return cache_root() / "projections"


def generator_fingerprint(G) -> str:
    """A hash of what the generator computes: its class, architecture and every tensor of its
    state dict (weights and buffers), whatever file or built-in it came from. The per-pixel
    noise maps are left out: projection runs with the noise off, and the live frame generator
    swaps those buffers while it renders (another thread), which must not change the key."""
    import torch

    digest = hashlib.sha256()
    digest.update(type(G).__name__.encode())
    digest.update(type(G.synthesis).__name__.encode())
    config = getattr(G, "config", None)
    if config is not None:
        digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(G.state_dict().items()):
        if name.endswith("noise_const"):
            continue
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(model_fingerprint: str, image_sha256: str, steps: int, w_plus: bool,
              loss_name: str) -> str:
    text = json.dumps({"model": model_fingerprint, "image": image_sha256, "steps": int(steps),
                       "w_plus": bool(w_plus), "loss": loss_name,
                       "version": PROJECTION_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_projector(G, *, progress: bool = True) -> Projector:
    """A ``Projector`` for ``G`` with the default loss: cache hit -> the stored ``w``; miss ->
    project (a log line, and a progress bar when ``progress``), store, return. The model's
    fingerprint is computed on first use only."""
    fingerprint: list[str] = []

    def projector(image: Path, steps: int, w_plus: bool) -> np.ndarray:
        # torch: loaded when a preset first asks for a projection, not when a session starts
        from .losses import default_loss
        from .projection import load_target, project

        image = Path(image)
        if not image.is_file():
            raise PhospheneError(f"project keyframe: image not found: {image}")
        if not fingerprint:
            fingerprint.append(generator_fingerprint(G))
        loss = default_loss()
        key = cache_key(fingerprint[0], file_sha256(image), steps, w_plus, loss.name)
        path = projection_cache_dir() / f"{key}.npy"
        if path.is_file():
            try:
                w = np.load(path, allow_pickle=False)
                if w.shape == (G.num_ws, G.w_dim):
                    log.info("project keyframe %s: cached projection %s", image.name, path.name)
                    return w.astype(np.float32, copy=False)
            except (OSError, ValueError):
                pass                       # a damaged entry is computed again
        log.info("project keyframe %s: projecting into the model (%d steps, %s; computed once, "
                 "then cached in %s)", image.name, steps, "w+" if w_plus else "w", path.parent)
        target = load_target(image, G.img_resolution, G.img_channels)
        result = project(G, target, steps=steps, w_plus=w_plus, loss=loss, progress=progress,
                         description=f"projecting {image.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, result.w.astype(np.float32), allow_pickle=False)
        tmp.replace(path)
        log.info("project keyframe %s: done (loss %.4f), cached as %s", image.name,
                 result.losses[-1], path.name)
        return result.w

    return projector
