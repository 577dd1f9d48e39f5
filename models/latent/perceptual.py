"""A perceptual loss from local weights: LPIPS-style distance between VGG16 features.

No weights can be downloaded here, so the user points to a file (``--perceptual PATH``). It is
read without running code: a ``.safetensors`` file, or a ``torch.save`` state dict loaded with
``weights_only=True``. The file holds

- **required**: the VGG16 convolution weights under torchvision's names ``features.N.weight`` /
  ``features.N.bias`` for N in 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28 (what
  ``torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict()`` holds; its
  ``classifier.*`` entries are ignored). Channel counts are read from the shapes.
- **optional**: LPIPS' learned per-channel weights ``lin0.model.1.weight`` ...
  ``lin4.model.1.weight`` (shape ``[1, C, 1, 1]``; the ``vgg.pth`` of the ``lpips`` package,
  v0.1). Without them every channel counts the same (the "baseline" LPIPS variant).

The distance (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", 2018): features at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 of both images,
each unit-normalised over channels, squared difference weighted per channel, averaged over the
picture, summed over the five layers.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from phosphene.errors import PhospheneError

from .losses import ImageLoss

# torchvision's vgg16().features: conv layer indices, the 'M' max-pools between the groups, and
# the ReLU outputs LPIPS taps (the index of the ReLU after the tapped conv)
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
POOL_AFTER = (2, 7, 14, 21)           # a max-pool follows the ReLU of these convs
TAPS = (2, 7, 14, 21, 28)             # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
# LPIPS' input scaling (its ScalingLayer): images in [-1, 1] shifted and scaled like ImageNet
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
    """VGG16's convolution stack, returning the five LPIPS taps."""

    def __init__(self, channels: list[tuple[int, int]]):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, conv in zip(CONV_INDICES, self.convs):
            x = F.relu(conv(x))
            if index in TAPS:
                taps.append(x)
            if index in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return taps


class PerceptualLoss(ImageLoss):
    name = "perceptual (VGG16)"

    def __init__(self, features: VGG16Features, channel_weights: list[torch.Tensor] | None):
        super().__init__()
        self.features = features.eval().requires_grad_(False)
        self.channel_weights = nn.ParameterList(
            [nn.Parameter(w.reshape(1, -1, 1, 1).float(), requires_grad=False)
             for w in channel_weights]) if channel_weights else None
        self.register_buffer("shift", torch.tensor(SHIFT).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).reshape(1, 3, 1, 1))

    def forward(self, frame: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if frame.shape[1] == 1:                       # a greyscale model: VGG sees grey RGB
            frame, target = frame.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        a = self.features((frame - self.shift) / self.scale)
        b = self.features((target - self.shift) / self.scale)
        total = frame.new_zeros(())
        for k, (fa, fb) in enumerate(zip(a, b)):
            diff = (_unit_normalise(fa) - _unit_normalise(fb)).square()
            if self.channel_weights is not None:
                total = total + (diff * self.channel_weights[k]).sum(1).mean()
            else:
                total = total + diff.mean(1).mean()
        return total


def _unit_normalise(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.square().sum(1, keepdim=True).sqrt() + eps)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, never running code from it."""
    p = Path(path)
    if not p.is_file():
        raise PhospheneError(f"perceptual weights not found: {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
            raise PhospheneError(f"{p}: not a readable .safetensors file: {exc}") from None
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - includes the unpickler refusing code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PhospheneError(f"{p}: not a plain torch state dict (read with weights_only=True, "
                             f"nothing in it is run): {first}") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise PhospheneError(f"{p}: expected a dict of tensors (a state dict)")
    return data


def load_perceptual_loss(path: str | Path) -> PerceptualLoss:
    """The perceptual loss from ``path`` (see the module doc for what the file holds)."""
    state = read_state_dict(path)
    # accept a whole torchvision model's state dict or the features alone
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    channels, tensors = [], []
    previous = 3
    for index in CONV_INDICES:
        weight = state.get(f"{prefix}{index}.weight")
        bias = state.get(f"{prefix}{index}.bias")
        if weight is None or bias is None:
            raise PhospheneError(f"{path}: no VGG16 convolution {prefix}{index}.weight/.bias; "
                                 "expected torchvision's vgg16 state dict (features.0 ... "
                                 "features.28)")
        if weight.ndim != 4 or tuple(weight.shape[1:]) != (previous, 3, 3) \
                or tuple(bias.shape) != (weight.shape[0],):
            raise PhospheneError(f"{path}: {prefix}{index}.weight has shape {list(weight.shape)}, "
                                 f"expected [C, {previous}, 3, 3]")
        channels.append((previous, int(weight.shape[0])))
        tensors.append((weight, bias))
        previous = int(weight.shape[0])
    features = VGG16Features(channels)
    with torch.no_grad():
        for conv, (weight, bias) in zip(features.convs, tensors):
            conv.weight.copy_(weight.float())
            conv.bias.copy_(bias.float())
    lin = [state.get(f"lin{k}.model.1.weight") for k in range(len(TAPS))]
    if any(w is not None for w in lin):
        tapped = [channels[CONV_INDICES.index(t)][1] for t in TAPS]
        for k, (w, c) in enumerate(zip(lin, tapped)):
            if w is None or w.numel() != c:
                raise PhospheneError(f"{path}: LPIPS weight lin{k}.model.1.weight missing or not "
                                     f"{c} channels")
        return PerceptualLoss(features, [w.reshape(-1) for w in lin])
    return PerceptualLoss(features, None)
