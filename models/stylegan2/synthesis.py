"""The synthesis network: ws -> image, one block per resolution, 'skip' toRGB architecture.

Each block doubles the resolution (the first starts from a learned 4x4 constant), runs two
modulated convolutions, and adds its toRGB output to the up-sampled image of the block below:
the image is a sum of contributions from every scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from . import ops
from .config import GeneratorConfig
from .layers import SynthesisLayer, ToRGBLayer


# Devices whose fp16 convolutions are fast. CPU fp16 works but is slower than fp32, so a
# checkpoint's num_fp16_res applies on CUDA only.
FP16_DEVICE_TYPES = ("cuda",)


def use_fused_modconv(batch_size: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether to run modulated convs as one grouped conv with per-sample kernels.

    NVlabs' inference rule: fused in fp32 and at batch 1; unfused (scale activations, shared
    kernel, rescale) for fp16 batches, where per-sample fp16 kernels lose precision. On this
    2-core CPU fused was also the faster form at batch 8 (50 vs 28 images/s at 256x256).
    """
    return batch_size == 1 or dtype == torch.float32


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, is_last: bool, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False,
                 use_noise: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        use_noise=use_noise)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                    resample_filter=resample_filter, conv_clamp=conv_clamp,
                                    use_noise=use_noise)
        self.num_conv += 1
        # 'skip' architecture: every block has a toRGB.
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_torgb += 1

    def compute_dtype(self, device: torch.device, force_fp32: bool = False) -> torch.dtype:
        """fp16 only where the config asks for it *and* the device is CUDA (CPU fp16 is slow)."""
        if self.use_fp16 and not force_fp32 and device.type in FP16_DEVICE_TYPES:
            return torch.float16
        return torch.float32

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "const", force_fp32: bool = False,
                fused_modconv: bool | None = None,
                bend: Callable[[torch.Tensor], torch.Tensor] | None = None,
                noise: Sequence[torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws [N, num_conv + num_torgb, w_dim]``; returns (features, image so far).
        ``noise``: this block's noise maps, one per convolution (``SynthesisNetwork.forward``).
        ``bend``: applied to the features after the convolutions, before the toRGB (network
        bending, ``bending.py``), so this block's colours and every later block see it."""
        batch = ws.shape[0]
        dtype = self.compute_dtype(ws.device, force_fp32)
        # fp16 blocks run channels-last (NHWC suits tensor cores). NVlabs does this only with
        # fp16_channels_last=True (train.py --nhwc; off by default): the two layouts differ by
        # fp16 rounding alone (~1e-2 on unfused batches, measured against their code on CPU).
        # fp32 stays NCHW: channels-last measured no faster on the CPU (builtin:abstract 256²,
        # 1 thread: 21.0 vs 20.5 ms a frame, identical output)
        memory_format = torch.channels_last if dtype == torch.float16 else torch.contiguous_format
        if fused_modconv is None:
            fused_modconv = use_fused_modconv(batch, dtype, ws.device)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).expand(batch, -1, -1, -1)
            x = x.contiguous(memory_format=memory_format)
            x = self.conv1(x, ws[:, 0], noise_mode=noise_mode, fused_modconv=fused_modconv,
                           noise_map=None if noise is None else noise[0])
        else:
            x = x.to(dtype=dtype, memory_format=memory_format)
            x = self.conv0(x, ws[:, 0], noise_mode=noise_mode, fused_modconv=fused_modconv,
                           noise_map=None if noise is None else noise[0])
            x = self.conv1(x, ws[:, 1], noise_mode=noise_mode, fused_modconv=fused_modconv,
                           noise_map=None if noise is None else noise[1])
        if bend is not None:
            x = bend(x)

        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, ws[:, self.num_conv], fused_modconv=fused_modconv)
        y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        img = img.add_(y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, fp16={self.use_fp16}"


class SynthesisNetwork(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        res = config.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")
        if config.architecture != "skip":
            raise ValueError(f"only the 'skip' architecture is supported, got {config.architecture!r}")
        self.w_dim = config.w_dim
        self.img_resolution = res
        self.img_channels = config.img_channels
        self.block_resolutions = config.block_resolutions
        # The num_fp16_res highest resolutions run in fp16 (never below 8x8), NVlabs' rule.
        fp16_resolution = max(2 ** (config.img_resolution_log2 + 1 - config.num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = config.channels_at(res // 2) if res > 4 else 0
            block = SynthesisBlock(
                in_channels, config.channels_at(res), config.w_dim, res, config.img_channels,
                is_last=(res == self.img_resolution), resample_filter=config.resample_filter,
                conv_clamp=config.conv_clamp, use_fp16=(res >= fp16_resolution),
                use_noise=config.use_noise)
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last block's toRGB; the others share the next block's first w
        self.num_convs = sum(block.num_conv for block in self.blocks())

    def blocks(self):
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def set_num_fp16_res(self, num_fp16_res: int) -> None:
        """Run the ``num_fp16_res`` highest resolutions in fp16 on CUDA (NVlabs' rule, never
        below 8x8); 0 = all fp32. Useful for checkpoints trained without fp16 (TF-era)."""
        fp16_resolution = max(2 ** (self.img_resolution.bit_length() - 1 + 1 - num_fp16_res), 8)
        for block in self.blocks():
            block.use_fp16 = num_fp16_res > 0 and block.resolution >= fp16_resolution

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = False,
                fused_modconv: bool | None = None,
                bends: Mapping[int, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                noise: Sequence[torch.Tensor] | None = None,
                ) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` -> image ``[N, img_channels, R, R]`` float32, nominal [-1, 1].
        ``bends``: block resolution -> what to do to that block's features (``bending.py``);
        None (the usual case) costs nothing.
        ``noise``: with ``noise_mode="const"``, the noise maps to add in place of the
        ``noise_const`` buffers, one ``[N, 1, R, R]`` (or ``[R, R]``) map per convolution in
        network order (``noise_layers``), each times its layer's learned strength. Noise is
        then an input like ``ws``: no module state changes per call, and a captured CUDA graph
        reads the caller's buffers, filled in place before each replay."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if noise is not None and len(noise) != self.num_convs:
            raise ValueError(f"noise must have one map per convolution ({self.num_convs}), "
                             f"got {len(noise)}")
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = n_idx = 0
        for block in self.blocks():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode=noise_mode, force_fp32=force_fp32,
                           fused_modconv=fused_modconv,
                           bend=None if bends is None else bends.get(block.resolution),
                           noise=None if noise is None else noise[n_idx:n_idx + block.num_conv])
            w_idx += block.num_conv
            n_idx += block.num_conv
        return img
