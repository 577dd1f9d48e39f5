"""The low-level operations of StyleGAN2, in plain PyTorch (no custom CUDA kernels).

These reproduce the numerics of NVlabs' ``torch_utils.ops`` (``upfirdn2d``, ``bias_act``,
``conv2d_resample``) and ``training/networks.py`` (``modulated_conv2d``) so that weights trained
there give the same images here. Only what a *generator* needs is implemented: up-sampling, no
down-sampling convolutions.

Conventions: tensors are NCHW; a "filter" is a float32 FIR kernel prepared by
:func:`setup_filter` (2-D ``[fh, fw]`` for short kernels, 1-D ``[taps]`` when separable).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import operator
from typing import Sequence

import torch
import torch.nn.functional as F

# Activation functions with the gain NVlabs applies by default after them ("def_gain"): the
# factor that keeps unit-variance inputs at unit variance through the non-linearity.
ACTIVATION_DEFAULT_GAIN = {
    "linear": 1.0,
    "relu": math.sqrt(2),
    "lrelu": math.sqrt(2),
}
LRELU_ALPHA = 0.2

# fp16 overflows at 65504; NVlabs trains every fp16 layer with conv_clamp=256. Checkpoints that
# had no clamp (TF-era, rosinality) get this clamp when run in fp16, so they cannot overflow.
FP16_DEFAULT_CLAMP = 256.0


def setup_filter(taps: Sequence[float] | torch.Tensor, *, normalize: bool = True,
                 gain: float = 1.0, separable: bool | None = None) -> torch.Tensor:
    """Turn 1-D filter taps into the FIR kernel ``upfirdn2d`` expects.

    Short kernels (< 8 taps) become their 2-D outer product ``[n, n]`` -- the shape NVlabs
    stores in ``resample_filter`` buffers; longer ones stay 1-D (separable). The kernel sums to
    one (unit DC gain) unless ``normalize`` is False, then is scaled by ``gain``.
    """
    f = torch.as_tensor(taps, dtype=torch.float32).clone()
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f * (gain ** (f.ndim / 2))


def _parse_padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """``p`` | ``[px, py]`` | ``[x0, x1, y0, y1]`` -> ``(x0, x1, y0, y1)``."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    x0, x1, y0, y1 = padding
    return x0, x1, y0, y1


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding: int | Sequence[int] = 0, flip_filter: bool = False,
              gain: float = 1.0) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample each channel of ``x``.

    The same sequence as ``scipy.signal.upfirdn`` in 2-D: (1) insert ``up - 1`` zeros after each
    pixel; (2) pad with zeros (negative padding crops); (3) *convolve* with ``f`` (correlate if
    ``flip_filter``), keeping only outputs whose footprint lies inside the padded image;
    (4) keep every ``down``-th pixel. ``gain`` scales the result (``up**2`` keeps the DC level
    when up-sampling in 2-D).
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if _FIR_AS_STENCIL.get() and f.ndim == 2 and down == 1:
        return _upfirdn2d_stencil(x, f, up, padding, flip_filter, gain)
    batch, channels, height, width = x.shape
    x0, x1, y0, y1 = _parse_padding(padding)

    if up > 1:
        # Zero insertion without an intermediate copy per pad: view as [.., H, 1, W, 1], pad the
        # singleton axes to `up`, and fold back.
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)

    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    if min(x0, x1, y0, y1) < 0:
        x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]

    f = f.to(device=x.device, dtype=x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:  # conv2d correlates; flipping the kernel makes it a true convolution
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        weight = f[None, None].expand(channels, 1, *f.shape)
        x = F.conv2d(x, weight, groups=channels)
    else:  # separable: rows, then columns
        weight = f[None, None, None].expand(channels, 1, 1, f.shape[0])
        x = F.conv2d(x, weight, groups=channels)
        x = F.conv2d(x, weight.transpose(2, 3), groups=channels)

    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


# Set while a graph is traced for inductor's CPU code (the compiled live synthesis, aot.py):
# there a short 2-D filter is written out as a sum of shifted slices, which inductor fuses
# with its neighbours into vectorised loops, where the depthwise convolution above stays an
# external call per filter (mkldnn's depthwise kernel: ~1 ms for a 4-channel 256x256 map
# against ~0.6 ms as a stencil, builtin:abstract on one core; docs/benchmarks.md). Eager keeps
# the convolution: the stencil's slices would be dozens of separate ops there.
_FIR_AS_STENCIL = contextvars.ContextVar("fir_as_stencil", default=False)


@contextlib.contextmanager
def fir_as_stencil():
    """Within this block :func:`upfirdn2d` computes short 2-D filters as shifted-slice sums
    (the same values to float rounding; for tracing, see ``_FIR_AS_STENCIL``)."""
    token = _FIR_AS_STENCIL.set(True)
    try:
        yield
    finally:
        _FIR_AS_STENCIL.reset(token)


def _taps_by_phase(taps: int, up: int, pad0: int, phase: int) -> list[tuple[int, int]]:
    """(tap, input offset) pairs that reach output ``up * m + phase`` along one axis.

    Output ``Y`` of the correlation reads the zero-inserted, padded signal at ``Y + k - pad0``,
    which is a real sample only when that index is a multiple of ``up``: sample
    ``m + (phase + k - pad0) // up``.
    """
    return [(k, (phase + k - pad0) // up) for k in range(taps) if (phase + k - pad0) % up == 0]


def _upfirdn2d_stencil(x: torch.Tensor, f: torch.Tensor, up: int,
                       padding: int | Sequence[int], flip_filter: bool,
                       gain: float) -> torch.Tensor:
    """:func:`upfirdn2d` (``down == 1``, 2-D filter) as sums of shifted slices, one sum per
    polyphase component: up-sampling by 2 is four small filters on the input grid, interleaved,
    so no multiply touches an inserted zero."""
    batch, channels, height, width = x.shape
    x0, x1, y0, y1 = _parse_padding(padding)
    fh, fw = f.shape
    g = f.to(device=x.device, dtype=x.dtype) * gain      # a 2-D filter takes the gain once
    if not flip_filter:
        g = g.flip([0, 1])
    out_h = height * up + y0 + y1 - fh + 1
    out_w = width * up + x0 + x1 - fw + 1
    # outputs per phase along each axis; where the output is not a multiple of `up`, the last
    # phases compute one extra (zero-padded) sample, cropped after interleaving
    rows, cols = -(-out_h // up), -(-out_w // up)
    row_taps = [_taps_by_phase(fh, up, y0, a) for a in range(up)]
    col_taps = [_taps_by_phase(fw, up, x0, b) for b in range(up)]
    offsets_y = [d for taps in row_taps for _, d in taps]
    offsets_x = [d for taps in col_taps for _, d in taps]
    # zero padding so every offset slice of length rows/cols lies inside the input
    top, left = max(0, -min(offsets_y)), max(0, -min(offsets_x))
    bottom = max(0, rows - 1 + max(offsets_y) - (height - 1))
    right = max(0, cols - 1 + max(offsets_x) - (width - 1))
    xp = F.pad(x, [left, right, top, bottom])

    def phase(a: int, b: int) -> torch.Tensor:
        """The outputs at rows ``up * m + a``, columns ``up * n + b``: ``[N, C, rows, cols]``."""
        terms = [g[ky, kx] * xp[:, :, top + dy: top + dy + rows, left + dx: left + dx + cols]
                 for ky, dy in row_taps[a] for kx, dx in col_taps[b]]
        return functools.reduce(operator.add, terms)

    if up == 1:
        return phase(0, 0)
    interleaved = torch.stack([torch.stack([phase(a, b) for b in range(up)], dim=-1)
                               for a in range(up)], dim=3)      # [N, C, rows, up, cols, up]
    interleaved = interleaved.reshape(batch, channels, rows * up, cols * up)
    return interleaved[:, :, :out_h, :out_w]


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, gain: float = 1.0) -> torch.Tensor:
    """Up-sample by ``up`` with FIR filter ``f``; output is exactly ``up`` times the input size."""
    fh, fw = (f.shape[0], f.shape[-1])
    padding = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=padding, gain=gain * up * up)


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear",
             gain: float | None = None, clamp: float | None = None, dim: int = 1) -> torch.Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)``, NVlabs' fused bias + activation.

    ``gain=None`` means the activation's default gain (sqrt(2) for (l)relu, 1 for linear);
    ``b`` is broadcast along ``dim``.
    """
    if act not in ACTIVATION_DEFAULT_GAIN:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATION_DEFAULT_GAIN)}")
    if gain is None:
        gain = ACTIVATION_DEFAULT_GAIN[act]
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape).to(x.dtype)
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_ALPHA)
    elif act == "relu":
        x = F.relu(x)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None,
                    up: int = 1, padding: int = 0, groups: int = 1,
                    flip_weight: bool = True) -> torch.Tensor:
    """2-D convolution, optionally preceded by FIR up-sampling, as NVlabs computes it.

    ``up == 1``: a plain (padded) convolution. ``up > 1`` with a k x k kernel: a stride-``up``
    transposed convolution followed by the FIR low-pass ``f`` (gain ``up**2``) -- cheaper than
    up-sampling first, and the same arithmetic NVlabs uses, so results agree to rounding.
    ``flip_weight=True`` means correlation (``torch.nn.functional.conv2d``'s convention).
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1:
        if not flip_weight and (kh > 1 or kw > 1):
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=padding, groups=groups)

    fh, fw = (1, 1) if f is None else (f.shape[0], f.shape[-1])
    # Padding of the up-sampled image, then what the transposed conv already accounts for.
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)

    # conv_transpose2d wants [in, out/groups, kh, kw]; regroup per group.
    if groups == 1:
        wt = w.transpose(0, 1)
    else:
        wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        wt = wt.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    # A transposed convolution is a true convolution; flip when the caller asked for correlation.
    if flip_weight and (kh > 1 or kw > 1):
        wt = wt.flip([2, 3])
    x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square along ``dim`` (StyleGAN's "pixel norm")."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: torch.Tensor | None = None, up: int = 1, padding: int = 0,
                     resample_filter: torch.Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    """StyleGAN2's style-modulated convolution (paper eq. 1-3).

    Each sample's kernel is ``weight * styles[n]`` over input channels, then (``demodulate``)
    rescaled so every output channel has unit expected variance. ``fused_modconv`` runs this as
    one grouped convolution with per-sample kernels; otherwise the styles scale the activations
    before a shared convolution and the demodulation scales them after -- the same result; NVlabs
    uses it for fp16 batches, where per-sample fp16 kernels would lose precision.

    Shapes: ``x [N, I, H, W]``, ``weight [O, I, k, k]``, ``styles [N, I]``; ``noise``
    broadcastable to the output ``[N, O, H*up, W*up]``.
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape

    # In fp16 the products below can overflow; NVlabs rescales weight and styles by their max
    # first (demodulation makes the result invariant to that scale).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            # One fused multiply-add (one rounding), as NVlabs computes it: in fp16 a separate
            # multiply then add rounds twice and drifts from their images by ~1e-2.
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        elif noise is not None:
            x = x.add_(noise.to(x.dtype))
        return x

    if demodulate:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, batch * in_channels, *x.shape[2:])
    w = w.reshape(batch * out_channels, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, padding=padding,
                        groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, out_channels, *x.shape[2:])
    if noise is not None:
        # In place on the fresh conv output: the sum is computed in the noise's float32 and
        # rounded once to x's dtype (NVlabs' arithmetic; pre-rounding the noise to fp16 differs).
        x = x.add_(noise)
    return x
