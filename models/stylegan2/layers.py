"""StyleGAN2's layers: equalized-lr fully-connected, modulated synthesis conv, and toRGB.

Parameter and buffer names and shapes are NVlabs stylegan2-ada-pytorch's, so their state_dict
loads with ``strict=True``. Weights are stored at unit variance and scaled at run time by
``weight_gain`` ("equalized learning rate"): that is how the checkpoints store them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import ops

NOISE_MODES = ("const", "random", "none")


class FullyConnectedLayer(nn.Module):
    """``act(x @ (weight * lr_multiplier / sqrt(in))^T + bias * lr_multiplier)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class SynthesisLayer(nn.Module):
    """One modulated 3x3 convolution (optionally up-sampling x2), noise, bias, lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: int = 1, use_noise: bool = True,
                 activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = ops.ACTIVATION_DEFAULT_GAIN[activation]
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                fused_modconv: bool = True, gain: float = 1.0,
                noise_map: torch.Tensor | None = None) -> torch.Tensor:
        """``noise_map``: a ``[N, 1, R, R]`` (or ``[R, R]``) map used in place of
        ``noise_const`` in "const" mode (times the learned strength, as ``noise_const`` is):
        the caller's noise as an input, so a captured graph reads buffers the caller fills."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution],
                                device=x.device, dtype=torch.float32) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = (self.noise_const if noise_map is None else noise_map) * self.noise_strength

        x = ops.modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up,
                                 padding=self.padding, resample_filter=self.resample_filter,
                                 flip_weight=(self.up == 1), fused_modconv=fused_modconv)

        clamp = self.conv_clamp
        if clamp is None and x.dtype == torch.float16:
            clamp = ops.FP16_DEFAULT_CLAMP
        act_clamp = clamp * gain if clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain,
                            clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, "
                f"up={self.up}, noise={self.use_noise}")


class ToRGBLayer(nn.Module):
    """A modulated 1x1 convolution to image colours, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False,
                                 fused_modconv=fused_modconv)
        clamp = self.conv_clamp
        if clamp is None and x.dtype == torch.float16:
            clamp = ops.FP16_DEFAULT_CLAMP
        return ops.bias_act(x, self.bias, clamp=clamp)
