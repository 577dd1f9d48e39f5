"""The mapping network: z (and a class label c) -> w, broadcast to every synthesis layer."""

from __future__ import annotations

import torch
from torch import nn

from .layers import FullyConnectedLayer
from .ops import normalize_2nd_moment


class MappingNetwork(nn.Module):
    """``num_layers`` lrelu fully-connected layers at a reduced learning rate.

    ``w_avg`` (the running mean of w over training) is the centre that truncation pulls
    towards: ``w' = w_avg + psi * (w - w_avg)``, for the first ``truncation_cutoff`` ws only
    when a cutoff is given (coarse layers: pose and layout; fine layers keep their variety).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation,
                lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
        """``z [N, z_dim]``, ``c [N, c_dim]`` -> ``ws [N, num_ws, w_dim]`` (float32)."""
        x = None
        if self.z_dim > 0:
            _check_shape("z", z, self.z_dim)
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            _check_shape("c", c, self.c_dim)
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
                return x.unsqueeze(1).expand(-1, self.num_ws, -1)
            ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])
            ws[:, :truncation_cutoff] = self.w_avg.lerp(ws[:, :truncation_cutoff], truncation_psi)
            return ws
        # A broadcast view, not a copy: synthesis only reads ws.
        return x.unsqueeze(1).expand(-1, self.num_ws, -1)


def _check_shape(name: str, value: torch.Tensor | None, dim: int) -> None:
    if value is None:
        raise ValueError(f"{name} is required: this generator expects {name} of shape [N, {dim}]")
    if value.ndim != 2 or value.shape[1] != dim:
        raise ValueError(f"{name} must have shape [N, {dim}], got {list(value.shape)}")
