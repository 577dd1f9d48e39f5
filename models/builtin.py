"""Built-in generators that need no file: ``builtin:abstract``.

``abstract`` is a real StyleGAN2 (our :class:`Generator`, NVlabs layout) with seeded random
weights, shaped deterministically for the stage:

- no noise (noise_strength 0): soft fields, not grain;
- toRGB contributions weighted towards the coarse blocks: large, smoothly blended colour
  regions; fine blocks only add a little structure;
- the RGB output is calibrated on fixed latents -- per-channel mean removed and the three
  channels whitened to a target spread -- and that 3x3 colour transform is folded into every
  toRGB layer's weights and biases, so the net itself emits balanced, saturated colour that uses
  the [-1, 1] range without heavy clipping;
- an "overscan" crop: a randomly initialised StyleGAN2 fades to grey at the image edges (each
  up-sampling pads with zeros, and nothing was trained to undo it), so the network renders a
  slightly larger field of view and the outer ``3/16`` on each side is cropped and the centre
  resized back to full resolution. The crop lives in the synthesis network, so ``G(z)`` and
  ``G.synthesis(ws)`` both return the finished picture.

Everything is drawn from a fixed ``torch.Generator`` seed on the CPU, so every machine builds
the same network; calibration factors are rounded so float noise cannot change them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from phosphene.errors import PhospheneError

from .stylegan2 import Generator, GeneratorConfig
from .stylegan2.synthesis import SynthesisNetwork

BUILTIN_PREFIX = "builtin:"
ABSTRACT_SEED = 20240611
CALIBRATION_SEEDS = range(10_000, 10_032)
COLOUR_SPREAD = 0.5    # target standard deviation of each decorrelated colour channel
OVERSCAN_FRACTION = 3 / 16  # cropped from each side

# toRGB weight scale per block resolution: coarse blocks paint, fine blocks only texture.
TORGB_SCALES = {4: 3.0, 8: 3.0, 16: 2.0, 32: 1.0, 64: 0.5, 128: 0.25, 256: 0.1}


def abstract_config(img_resolution: int = 256) -> GeneratorConfig:
    """The architecture of ``builtin:abstract`` (its channel counts fall with resolution so
    that 256x256 runs in real time on a laptop CPU)."""
    return GeneratorConfig(
        z_dim=64, w_dim=64, c_dim=0, img_resolution=img_resolution, img_channels=3,
        mapping_layers=4, channel_base=1024, channel_max=128, conv_clamp=None, num_fp16_res=0)


class OverscanSynthesisNetwork(SynthesisNetwork):
    """A synthesis network whose output is the centre of its field of view, resized back.

    The crop removes the grey border that zero padding leaves on untrained networks; the
    state_dict is unchanged (the crop has no parameters).
    """

    def __init__(self, config: GeneratorConfig, overscan_fraction: float = OVERSCAN_FRACTION):
        super().__init__(config)
        self.margin = int(round(config.img_resolution * overscan_fraction))

    def forward(self, ws: torch.Tensor, **kwargs) -> torch.Tensor:
        img = super().forward(ws, **kwargs)
        if self.margin == 0:
            return img
        m = self.margin
        centre = img[:, :, m:-m, m:-m]
        return F.interpolate(centre, size=(self.img_resolution, self.img_resolution),
                             mode="bilinear", align_corners=False)


class BuiltinGenerator(Generator):
    """A :class:`Generator` with the overscan crop; ``builtin_name`` says which one it is."""

    def __init__(self, config: GeneratorConfig, builtin_name: str):
        super().__init__(config)
        self.synthesis = OverscanSynthesisNetwork(config)
        self.builtin_name = builtin_name


def _draw_weights(G: Generator, seed: int) -> None:
    """Fill every parameter and noise buffer from one seeded CPU generator, NVlabs' init:
    unit-normal weights and consts (mapping weights / lr_multiplier), zero biases, affine
    biases 1."""
    rng = torch.Generator().manual_seed(seed)
    lr_mul = G.config.mapping_lr_multiplier
    with torch.no_grad():
        for name, tensor in G.state_dict().items():
            if name.endswith(("resample_filter", "w_avg")):
                continue
            if name.endswith("affine.bias"):
                tensor.fill_(1.0)
            elif name.endswith(("bias", "noise_strength")):
                tensor.zero_()
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=rng))
                if name.startswith("mapping.fc"):
                    tensor.div_(lr_mul)


def _w_avg(G: Generator, seed: int, samples: int = 4096) -> torch.Tensor:
    """The mean w over many latents, as training would have tracked it (truncation centre)."""
    rng = torch.Generator().manual_seed(seed + 1)
    z = torch.randn([samples, G.z_dim], generator=rng)
    return G.mapping(z, None)[:, 0].mean(dim=0)


def _fold_colour_transform(G: Generator, matrix: torch.Tensor, offset: torch.Tensor) -> None:
    """Make the net output ``matrix @ rgb + offset``: every toRGB is linear in its outputs and
    the image is their (up-sampled) sum, so transform each toRGB and add ``offset`` once."""
    blocks = G.synthesis.blocks()
    with torch.no_grad():
        for block in blocks:
            rgb = block.torgb
            rgb.weight.copy_(torch.einsum("oc,cikl->oikl", matrix, rgb.weight))
            rgb.bias.copy_(matrix @ rgb.bias)
        blocks[-1].torgb.bias.add_(offset)


def build_abstract(img_resolution: int = 256, seed: int = ABSTRACT_SEED) -> BuiltinGenerator:
    config = abstract_config(img_resolution)
    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: keep it
        torch.manual_seed(seed)
        G = BuiltinGenerator(config, builtin_name="abstract").eval()
    _draw_weights(G, seed)
    with torch.no_grad():
        for block in G.synthesis.blocks():
            block.torgb.weight.mul_(TORGB_SCALES.get(block.resolution, 0.1))

    with torch.inference_mode():
        G.mapping.w_avg.copy_(_w_avg(G, seed))
        z = G.z_from_seeds(CALIBRATION_SEEDS, device="cpu")
        img = G(z)  # [N, 3, R, R]
    pixels = img.permute(1, 0, 2, 3).reshape(3, -1).double()
    mean = pixels.mean(dim=1)
    cov = torch.cov(pixels)
    # Whitening (ZCA): decorrelated channels -> all hues, not just the net's favourite axis.
    evals, evecs = torch.linalg.eigh(cov)
    whiten = evecs @ torch.diag(evals.clamp_min(1e-8).rsqrt()) @ evecs.T * COLOUR_SPREAD
    # Rounded so that last-bit differences between machines cannot change the network.
    whiten = torch.round(whiten * 1e4) / 1e4
    offset = torch.round(-(whiten @ mean) * 1e4) / 1e4
    _fold_colour_transform(G, whiten.float(), offset.float())
    return G


BUILTINS = {
    "abstract": build_abstract,
}


def build_builtin(name: str, device: torch.device | str | None = None) -> BuiltinGenerator:
    """``build_builtin("abstract")`` or ``build_builtin("builtin:abstract")``."""
    key = name[len(BUILTIN_PREFIX):] if name.startswith(BUILTIN_PREFIX) else name
    if key not in BUILTINS:
        known = ", ".join(BUILTIN_PREFIX + n for n in BUILTINS)
        raise PhospheneError(f"unknown built-in model {name!r}; known: {known}")
    G = BUILTINS[key]()
    if device is not None:
        G = G.to(device)
    return G.eval().requires_grad_(False)
