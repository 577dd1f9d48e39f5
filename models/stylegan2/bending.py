"""Network bending: operations on the synthesis network's feature maps (Broad et al., "Network
Bending: Expressive Manipulation of Deep Generative Models", 2021; Autolume's layer transforms).

A bend acts on the features ``x [N, C, H, W]`` a synthesis block has made, after its two
convolutions and before its toRGB, on a subset of the channels: every later block (and the
block's own colour output) sees the bent features. Each op takes its numeric parameters as
per-sample tensors ``[N]``, so one batch can hold frames with different bend values (offline
render); a sample whose parameters are the op's identity is passed through untouched (exactly:
the same bits as without the bend), so a batch gives the same frames as its samples one by one.

The ops (parameter names are the show's ``bend.<i>.<name>`` parameters):

=========  =====================  ==========================================================
op         parameters             what it does
=========  =====================  ==========================================================
translate  x, y                   shift by fractions of the map (x right, y down)
rotate     angle                  rotate by degrees (counter-clockwise) about the centre
scale      factor                 zoom about the centre (> 1 magnifies)
flip       amount                 mirror (``axis`` h, v or both), faded in by amount 0..1
erode      size                   minimum filter of size x size (rounded to an odd integer)
dilate     size                   maximum filter of size x size
invert     amount                 ``x * (1 - 2 amount)``: 1 negates the features
ablate     amount                 ``x * (1 - amount)``: 1 zeroes them
=========  =====================  ==========================================================

translate, rotate and scale resample the map bilinearly (``grid_sample``); what comes in over
the edge is set by ``edge``: ``wrap`` (the map tiles, the default), ``zeros``, ``border`` or
``reflection``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from phosphene.errors import PhospheneError


# -- the ops ---------------------------------------------------------------------------------
def _per_sample(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``[N]`` parameters as ``[N, 1, 1, 1]`` in the features' dtype and device."""
    return value.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)


def _affine(x: torch.Tensor, theta: torch.Tensor, edge: str) -> torch.Tensor:
    """Resample ``x`` through ``theta [N, 2, 3]`` (output -> input, normalised coordinates,
    as ``F.affine_grid``); ``edge`` says what lies outside the map."""
    n, c, h, w = x.shape
    theta = theta.to(device=x.device, dtype=torch.float32)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    src = x if x.dtype in (torch.float32, torch.float64) else x.float()
    if edge != "wrap":
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode=edge, align_corners=False)
        return out.to(x.dtype)
    # wrap: source pixel coordinates modulo the size, sampled from the map padded by one
    # pixel of its own opposite edge (so bilinear taps across the seam wrap too)
    size = torch.tensor([w, h], device=x.device, dtype=grid.dtype)
    pixels = torch.remainder(((grid + 1) * size - 1) / 2, size)
    padded = F.pad(src, (1, 1, 1, 1), mode="circular")
    grid = (2 * (pixels + 1) + 1) / (size + 2) - 1
    out = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(x.dtype)


def _theta(n: int, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
           tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.stack([a, b, tx], -1), torch.stack([c, d, ty], -1)], 1)


def translate(features: torch.Tensor, /, *, x: torch.Tensor, y: torch.Tensor,
              edge: str = "wrap") -> torch.Tensor:
    n = features.shape[0]
    one, zero = torch.ones(n), torch.zeros(n)
    # content moves right by x (a fraction of the width): output pixel u reads input u - x
    return _affine(features, _theta(n, one, zero, zero, one, -2 * x.float(), -2 * y.float()),
                   edge)


def rotate(x: torch.Tensor, *, angle: torch.Tensor, edge: str = "wrap") -> torch.Tensor:
    n = x.shape[0]
    rad = angle.double() * (math.pi / 180.0)
    cos, sin = torch.cos(rad).float(), torch.sin(rad).float()
    zero = torch.zeros(n)
    # counter-clockwise on screen (y points down): the output reads the input rotated back
    return _affine(x, _theta(n, cos, -sin, sin, cos, zero, zero), edge)


def scale(x: torch.Tensor, *, factor: torch.Tensor, edge: str = "wrap") -> torch.Tensor:
    n = x.shape[0]
    inv = 1.0 / factor.float().clamp_min(1e-3)
    zero = torch.zeros(n)
    return _affine(x, _theta(n, inv, zero, zero, inv, zero, zero), edge)


def flip(x: torch.Tensor, *, amount: torch.Tensor, axis: str = "h") -> torch.Tensor:
    dims = {"h": (-1,), "v": (-2,), "both": (-2, -1)}[axis]
    # torch.lerp is exact at both ends: amount 1 is the mirror image, bit for bit
    return torch.lerp(x, torch.flip(x, dims), _per_sample(amount, x))


def odd_size(size: torch.Tensor) -> torch.Tensor:
    """Kernel sizes: each value rounded to the nearest odd integer >= 1."""
    return (torch.floor((size.float() - 1) / 2 + 0.5).clamp_min(0) * 2 + 1).long()


def _min_max_filter(x: torch.Tensor, size: torch.Tensor, dilate: bool) -> torch.Tensor:
    sizes = odd_size(size)
    out = x
    for k in sorted(set(sizes.tolist())):
        if k == 1:
            continue
        src = x if dilate else -x
        pooled = F.max_pool2d(src.float(), k, stride=1, padding=k // 2).to(x.dtype)
        pooled = pooled if dilate else -pooled
        pick = (sizes == k).to(x.device).reshape(-1, 1, 1, 1)
        out = torch.where(pick, pooled, out)
    return out


def erode(x: torch.Tensor, *, size: torch.Tensor) -> torch.Tensor:
    return _min_max_filter(x, size, dilate=False)


def dilate(x: torch.Tensor, *, size: torch.Tensor) -> torch.Tensor:
    return _min_max_filter(x, size, dilate=True)


def invert(x: torch.Tensor, *, amount: torch.Tensor) -> torch.Tensor:
    return x * (1 - 2 * _per_sample(amount, x))


def ablate(x: torch.Tensor, *, amount: torch.Tensor) -> torch.Tensor:
    return x * (1 - _per_sample(amount, x))


@dataclass(frozen=True)
class BendOp:
    fn: Callable[..., torch.Tensor]
    params: tuple[str, ...]                      # numeric, per sample
    options: tuple[str, ...]                     # structural (axis, edge)
    is_identity: Callable[..., torch.Tensor]     # per-sample mask: these values change nothing


OPS: dict[str, BendOp] = {
    "translate": BendOp(translate, ("x", "y"), ("edge",),
                        lambda x, y: (x == 0) & (y == 0)),
    "rotate": BendOp(rotate, ("angle",), ("edge",),
                     lambda angle: torch.remainder(angle, 360) == 0),
    "scale": BendOp(scale, ("factor",), ("edge",), lambda factor: factor == 1),
    "flip": BendOp(flip, ("amount",), ("axis",), lambda amount: amount == 0),
    "erode": BendOp(erode, ("size",), (), lambda size: odd_size(size) == 1),
    "dilate": BendOp(dilate, ("size",), (), lambda size: odd_size(size) == 1),
    "invert": BendOp(invert, ("amount",), (), lambda amount: amount == 0),
    "ablate": BendOp(ablate, ("amount",), (), lambda amount: amount == 0),
}


# -- channels --------------------------------------------------------------------------------
def resolve_channels(spec, num_channels: int, where: str = "channels") -> slice | torch.Tensor:
    """Which channels a bend touches: ``"all"``, ``"A-B"`` (inclusive), a list of indices, or a
    fraction in (0, 1] (the first ``round(fraction * C)`` channels, at least one). A slice for
    a contiguous run, else an index tensor. ``where`` names the setting in errors."""
    if isinstance(spec, str):
        if spec == "all":
            return slice(0, num_channels)
        lo, _, hi = spec.partition("-")
        first, last = int(lo), int(hi)
        if last >= num_channels:
            raise PhospheneError(f"{where}: {spec!r} goes past the last channel: this block has "
                                 f"{num_channels} channels (0-{num_channels - 1})")
        return slice(first, last + 1)
    if isinstance(spec, float):
        return slice(0, max(1, round(spec * num_channels)))
    indices = [int(i) for i in spec]
    bad = [i for i in indices if not 0 <= i < num_channels]
    if bad:
        raise PhospheneError(f"{where}: channel {bad[0]} is out of range: this block has "
                             f"{num_channels} channels (0-{num_channels - 1})")
    if indices == list(range(indices[0], indices[-1] + 1)):
        return slice(indices[0], indices[-1] + 1)
    return torch.tensor(indices, dtype=torch.long)


# -- a bend, ready to run --------------------------------------------------------------------
@dataclass
class FeatureBend:
    """One op on one block's features: channels resolved, options fixed, parameters per
    sample (each ``[N]``)."""

    op: str
    channels: slice | torch.Tensor
    params: Mapping[str, torch.Tensor]
    options: Mapping[str, str]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        spec = OPS[self.op]
        identity = spec.is_identity(**self.params)
        if bool(identity.all()):
            return x                                          # nothing to do: the same bits
        sel = self.channels
        part = x[:, sel]
        bent = spec.fn(part, **self.params, **self.options)
        if bool(identity.any()):                              # keep untouched samples exact
            bent = torch.where(identity.to(x.device).reshape(-1, 1, 1, 1), part, bent)
        if isinstance(sel, slice) and range(x.shape[1])[sel] == range(x.shape[1]):
            return bent.contiguous(memory_format=_memory_format(x))
        out = x.clone()
        out[:, sel] = bent
        return out


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def compose(bends: Sequence[FeatureBend]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The bends of one block, applied in order."""
    def apply(x: torch.Tensor) -> torch.Tensor:
        for bend in bends:
            x = bend(x)
        return x
    return apply


def by_resolution(bends: Sequence[tuple[int, FeatureBend]]) -> dict[int, Callable]:
    """``[(resolution, bend), ...]`` in order -> ``{resolution: bends}``, what
    ``SynthesisNetwork.forward(bends=...)`` takes."""
    groups: dict[int, list[FeatureBend]] = {}
    for res, bend in bends:
        groups.setdefault(int(res), []).append(bend)
    return {res: compose(group) for res, group in groups.items()}
