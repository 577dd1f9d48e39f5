"""Generator output as pictures: tensors to uint8 arrays, and arrays tiled into a grid."""

from __future__ import annotations

import math

import numpy as np


def to_uint8(img) -> np.ndarray:
    """NCHW float in nominal [-1, 1] -> NHWC uint8 numpy (the NVlabs mapping, clipped)."""
    import torch  # the callers hold torch tensors already

    out = (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """Tile NHWC images into one HWC array, row-major, near-square by default."""
    n, h, w, ch = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, ch), dtype=images.dtype)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    return grid
