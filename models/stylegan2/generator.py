"""The StyleGAN2 generator: mapping + synthesis, with NVlabs' call conventions and state_dict."""

from __future__ import annotations

import torch
from torch import nn

from .config import GeneratorConfig
from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork


class Generator(nn.Module):
    """``G(z, c) -> images [N, img_channels, R, R]`` in nominal [-1, 1].

    The state_dict keys and shapes are those of NVlabs stylegan2-ada-pytorch's
    ``training.networks.Generator`` (``mapping.fc0.weight``, ``synthesis.b4.const``, ...), so a
    converted checkpoint loads with ``strict=True``.
    """

    def __init__(self, config: GeneratorConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = GeneratorConfig(**overrides)
        elif overrides:
            config = GeneratorConfig.from_dict({**config.to_dict(), **overrides})
        self.config = config
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.synthesis = SynthesisNetwork(config)
        self.num_ws = self.synthesis.num_ws
        if self.num_ws != config.num_ws:  # the config's formula and the built network must agree
            raise AssertionError(f"num_ws mismatch: network {self.num_ws}, config {config.num_ws}")
        self.mapping = MappingNetwork(
            z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim, num_ws=self.num_ws,
            num_layers=config.mapping_layers, embed_features=config.embed_features,
            layer_features=config.layer_features, lr_multiplier=config.mapping_lr_multiplier)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const",
                force_fp32: bool = False, fused_modconv: bool | None = None) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32,
                              fused_modconv=fused_modconv)

    # Helpers a caller would otherwise rewrite each time --------------------------------------
    @property
    def device(self) -> torch.device:
        return self.mapping.w_avg.device

    def z_from_seeds(self, seeds, device: torch.device | str | None = None) -> torch.Tensor:
        """One z per integer seed, the way NVlabs' generate.py draws them (numpy RandomState)."""
        import numpy as np

        z = np.stack([np.random.RandomState(int(seed)).randn(self.z_dim) for seed in seeds])
        return torch.from_numpy(z).to(device=device or self.device, dtype=torch.float32)

    def class_vector(self, class_idx: int | None, batch_size: int = 1,
                     device: torch.device | str | None = None) -> torch.Tensor | None:
        """One-hot labels for a conditional model (None for an unconditional one)."""
        if self.c_dim == 0:
            if class_idx is not None:
                raise ValueError("this generator is unconditional: it takes no class")
            return None
        if class_idx is None:
            raise ValueError(f"this generator is conditional: give a class in 0..{self.c_dim - 1}")
        if not 0 <= class_idx < self.c_dim:
            raise ValueError(f"class {class_idx} out of range 0..{self.c_dim - 1}")
        c = torch.zeros([batch_size, self.c_dim], device=device or self.device)
        c[:, class_idx] = 1
        return c

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
