"""The hyper-parameters that fully describe a StyleGAN2 generator's architecture.

Field names are those of NVlabs stylegan2-ada-pytorch (``Generator.__init__`` and its
``mapping_kwargs`` / ``synthesis_kwargs``), so a pickle's ``init_kwargs`` maps onto this
config directly. Our safetensors files store ``asdict(config)`` as JSON beside the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class GeneratorConfig:
    z_dim: int = 512                # input latent (Z) dimensionality
    c_dim: int = 0                  # conditioning label dimensionality, 0 = unconditional
    w_dim: int = 512                # intermediate latent (W) dimensionality
    img_resolution: int = 1024      # output resolution (a power of two >= 4)
    img_channels: int = 3           # output colour channels
    # mapping network
    mapping_layers: int = 8         # number of fully-connected layers
    mapping_lr_multiplier: float = 0.01  # learning-rate multiplier (scales weights and biases)
    embed_features: int | None = None    # label embedding size; None = w_dim
    layer_features: int | None = None    # hidden layer size; None = w_dim
    w_avg_beta: float = 0.995       # decay of the tracked W average (training only)
    # synthesis network
    channel_base: int = 32768       # overall multiplier for the number of channels
    channel_max: int = 512          # maximum number of channels in any layer
    num_fp16_res: int = 0           # use fp16 for the N highest resolutions (on CUDA only)
    conv_clamp: float | None = None # clamp convolution outputs to +-X; None = disabled
    architecture: str = "skip"      # only 'skip' is supported (StyleGAN2 config-e/f)
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)  # low-pass filter for up-sampling
    use_noise: bool = True          # per-pixel noise inputs

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["resample_filter"] = list(self.resample_filter)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys: {', '.join(unknown)}")
        data = dict(data)
        if "resample_filter" in data:
            data["resample_filter"] = tuple(int(v) for v in data["resample_filter"])
        return cls(**data)

    # Convenience derived values ------------------------------------------------------------
    @property
    def img_resolution_log2(self) -> int:
        return self.img_resolution.bit_length() - 1

    @property
    def block_resolutions(self) -> list[int]:
        return [2 ** i for i in range(2, self.img_resolution_log2 + 1)]

    def channels_at(self, resolution: int) -> int:
        """Feature channels of the synthesis block at ``resolution`` (NVlabs' formula)."""
        return min(self.channel_base // resolution, self.channel_max)

    @property
    def num_ws(self) -> int:
        """Number of W vectors the synthesis network consumes (conv layers + final torgb)."""
        # 4x4: conv1 (+ torgb, which shares the next block's first w); every later block:
        # conv0 + conv1; plus the last block's torgb.
        return 2 * (self.img_resolution_log2 - 2) + 2
