"""How far a generated frame is from a target image: the losses projection minimises.

- ``PixelStructureLoss`` (the default; needs no weights): the mix of Zhao et al., "Loss
  Functions for Image Restoration with Neural Networks" (2017): ``0.84 (1 - MS-SSIM) + 0.16 L1``
  on [0, 1] pixels. MS-SSIM (``pytorch-msssim``) compares local structure at five scales; frames
  smaller than 161 px (too small for five scales with the usual 11-tap window) use single-scale
  SSIM with a window that fits.
- ``PerceptualLoss``: LPIPS-style distance between VGG16 features (Zhang et al. 2018), from a
  weights file the user points to (``perceptual.py`` says which files it reads).

Both take frames ``[N, C, R, R]`` in nominal [-1, 1] and return a scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SSIM_WEIGHT = 0.84          # Zhao et al.'s mix
MS_SSIM_MIN_SIDE = 161      # pytorch-msssim: 4 halvings of an 11-tap window need > 160 px
MS_SSIM_WINDOW = 11


class ImageLoss(nn.Module):
    """A loss between frames and a target, both ``[N, C, R, R]`` in [-1, 1]."""

    name = "loss"

    def forward(self, frame: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _unit(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped softly enough to keep gradients where the frame overshoots."""
    return (img + 1.0) * 0.5


def structural_similarity(frame: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MS-SSIM (SSIM for small frames) of [0, 1] images, a scalar in about [0, 1]."""
    from pytorch_msssim import ms_ssim, ssim

    side = min(frame.shape[-2:])
    if side >= MS_SSIM_MIN_SIDE:
        return ms_ssim(frame, target, data_range=1.0, win_size=MS_SSIM_WINDOW)
    window = max(3, min(MS_SSIM_WINDOW, (side // 4) | 1))     # odd, a quarter of the frame
    return ssim(frame, target, data_range=1.0, win_size=window)


class PixelStructureLoss(ImageLoss):
    name = "pixel+ms-ssim"

    def forward(self, frame: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a, b = _unit(frame), _unit(target)
        # MS-SSIM is defined on non-negative values; an overshooting frame is clipped for it only
        structure = structural_similarity(a.clamp(0.0, 1.0), b.clamp(0.0, 1.0))
        return SSIM_WEIGHT * (1.0 - structure) + (1.0 - SSIM_WEIGHT) * F.l1_loss(a, b)


def default_loss() -> ImageLoss:
    return PixelStructureLoss()
