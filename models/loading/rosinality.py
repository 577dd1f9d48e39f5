"""rosinality/stylegan2-pytorch ``.pt`` checkpoints.

File structure (``torch.save`` of a dict): converted TF models hold
``{'g_ema': state_dict, 'latent_avg': tensor[w_dim]}``; ``train.py`` snapshots hold
``{'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args': argparse.Namespace}`` (no latent_avg).
Read with ``torch.load(weights_only=True)``; ``argparse.Namespace`` is the one extra type
allowed.

Their network has the same numerics as NVlabs' (equalized learning rate, the same
modulation, demodulation and [1,3,3,1] filters; see the NVlabs<->rosinality converters), so
weights map one to one; only names and a few singleton dimensions differ::

    style.{i}.weight, bias                 -> mapping.fc{i-1}.weight, bias   (style.0 = PixelNorm)
    latent_avg                             -> mapping.w_avg
    input.input [1,C,4,4]                  -> synthesis.b4.const [C,4,4]
    conv1.*                                -> synthesis.b4.conv1.*
    to_rgb1.*                              -> synthesis.b4.torgb.*
    convs.{2k}.*, convs.{2k+1}.*           -> synthesis.b{8*2^k}.conv0.*, conv1.*
    to_rgbs.{k}.*                          -> synthesis.b{8*2^k}.torgb.*
    noises.noise_0 [1,1,4,4]               -> synthesis.b4.conv1.noise_const [4,4]
    noises.noise_{2k+1}, noise_{2k+2}      -> synthesis.b{8*2^k}.conv0/conv1.noise_const
  within a layer:
    conv.weight [1,O,I,k,k]                -> weight [O,I,k,k]
    conv.modulation.weight, bias           -> affine.weight, bias
    noise.weight [1]                       -> noise_strength []
    activate.bias                          -> bias          (to_rgb: bias [1,3,1,1] -> [3])
    *.blur.kernel, *.upsample.kernel       -> (dropped: our resample_filter is derived)

The architecture is read from the tensor shapes (resolution, channels per block, mapping
depth); ``channel_multiplier`` becomes ``channel_base = 16384 * channel_multiplier``.
A train.py snapshot has no ``latent_avg``; w_avg is then estimated from 10,000 random z, as
rosinality's ``mean_latent`` does, and a note says so.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from phosphene.errors import PhospheneError
from phosphene.models.stylegan2.config import GeneratorConfig

from .checkpoint import Checkpoint, as_tensor

FORMAT = "rosinality-pt"
W_AVG_SAMPLES = 10_000


def is_rosinality(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("g_ema", data.get("g")), dict) and (
        "style.1.weight" in data.get("g_ema", data.get("g")))


def read(data: dict) -> Checkpoint:
    notes: list[str] = []
    if "g_ema" in data:
        source = data["g_ema"]
    else:
        source = data["g"]
        notes.append("the file has no g_ema; using g (the raw training weights)")
    source = {k: as_tensor(v, k) for k, v in source.items()}
    config = infer_config(source, data.get("args"))
    state = convert_state(source, config)
    if data.get("latent_avg") is not None:
        state["mapping.w_avg"] = as_tensor(data["latent_avg"], "latent_avg").reshape(-1)
    else:
        state["mapping.w_avg"] = torch.zeros(config.w_dim)
        notes.append(f"no latent_avg in the file; w_avg estimated from {W_AVG_SAMPLES} random z")
    checkpoint = Checkpoint(FORMAT, config, state, notes)
    if data.get("latent_avg") is None:
        checkpoint.state["mapping.w_avg"] = estimate_w_avg(checkpoint)
    return checkpoint


def infer_config(g: dict[str, torch.Tensor], args: Any = None) -> GeneratorConfig:
    mapping_indices = sorted(int(m.group(1)) for k in g
                             if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    if not mapping_indices or mapping_indices != list(range(1, len(mapping_indices) + 1)):
        raise PhospheneError(f"{FORMAT}: mapping layers style.1..style.N not found")
    num_upsampling_blocks = len({m.group(1) for k in g if (m := re.match(r"to_rgbs\.(\d+)\.", k))})
    resolution = 4 * 2 ** num_upsampling_blocks
    channels = {4: g["conv1.conv.weight"].shape[1]}
    for k in range(num_upsampling_blocks):
        channels[8 * 2 ** k] = g[f"convs.{2 * k + 1}.conv.weight"].shape[1]
    channel_base, channel_max = _channel_formula(channels)
    style_dim = g["style.1.weight"].shape[1]
    return GeneratorConfig(
        z_dim=style_dim, c_dim=0, w_dim=g[f"style.{mapping_indices[-1]}.weight"].shape[0],
        img_resolution=resolution, img_channels=g["to_rgb1.conv.weight"].shape[1],
        mapping_layers=len(mapping_indices),
        mapping_lr_multiplier=float(getattr(args, "lr_mlp", 0.01)),
        channel_base=channel_base, channel_max=channel_max,
        use_noise="conv1.noise.weight" in g)


def _channel_formula(channels: dict[int, int]) -> tuple[int, int]:
    """``(channel_base, channel_max)`` with ``min(base // res, max) == channels[res]``."""
    channel_max = max(channels.values())
    below_max = [res for res in sorted(channels) if channels[res] < channel_max]
    channel_base = (channels[below_max[0]] * below_max[0] if below_max
                    else channel_max * max(channels))
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise PhospheneError(f"{FORMAT}: channel counts {channels} do not follow StyleGAN2's "
                             "channel_base / resolution rule")
    return channel_base, channel_max


def convert_state(g: dict[str, torch.Tensor], config: GeneratorConfig) -> dict[str, torch.Tensor]:
    g = _ReadTracking(g)
    state: dict[str, torch.Tensor] = {}
    for i in range(config.mapping_layers):
        state[f"mapping.fc{i}.weight"] = g[f"style.{i + 1}.weight"]
        state[f"mapping.fc{i}.bias"] = g[f"style.{i + 1}.bias"]
    state["synthesis.b4.const"] = g["input.input"][0]

    def styled_conv(ours: str, theirs: str, noise_index: int) -> None:
        state[f"{ours}.weight"] = g[f"{theirs}.conv.weight"][0]
        state[f"{ours}.affine.weight"] = g[f"{theirs}.conv.modulation.weight"]
        state[f"{ours}.affine.bias"] = g[f"{theirs}.conv.modulation.bias"]
        state[f"{ours}.bias"] = g[f"{theirs}.activate.bias"]
        if config.use_noise:
            state[f"{ours}.noise_strength"] = g[f"{theirs}.noise.weight"].reshape([])
            state[f"{ours}.noise_const"] = g[f"noises.noise_{noise_index}"][0, 0]

    def to_rgb(ours: str, theirs: str) -> None:
        state[f"{ours}.weight"] = g[f"{theirs}.conv.weight"][0]
        state[f"{ours}.affine.weight"] = g[f"{theirs}.conv.modulation.weight"]
        state[f"{ours}.affine.bias"] = g[f"{theirs}.conv.modulation.bias"]
        state[f"{ours}.bias"] = g[f"{theirs}.bias"].reshape(-1)

    try:
        styled_conv("synthesis.b4.conv1", "conv1", 0)
        to_rgb("synthesis.b4.torgb", "to_rgb1")
        for k, res in enumerate(config.block_resolutions[1:]):
            styled_conv(f"synthesis.b{res}.conv0", f"convs.{2 * k}", 2 * k + 1)
            styled_conv(f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
            to_rgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k}")
    except KeyError as exc:
        raise PhospheneError(f"{FORMAT}: weight {exc} is missing") from exc
    unused = sorted(k for k in set(g) - g.read if not re.search(r"(blur|upsample)\.kernel$", k))
    if unused:
        raise PhospheneError(f"{FORMAT}: unexpected weights {', '.join(unused[:4])} (a modified "
                             "architecture?)")
    return {k: v.contiguous() for k, v in state.items()}


class _ReadTracking(dict):
    """A dict that remembers which keys were read, to find weights nothing consumed."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


@torch.no_grad()
def estimate_w_avg(checkpoint: Checkpoint) -> torch.Tensor:
    G = checkpoint.build()
    z = torch.randn([W_AVG_SAMPLES, G.z_dim], generator=torch.Generator().manual_seed(0))
    return G.mapping(z, None)[:, 0].mean(dim=0)
