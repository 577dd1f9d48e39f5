"""Latent requests -> generator frames: ``w`` through the synthesis network, with the noise the
director asked for.

The director says how strong the per-pixel noise is (``noise_strength``, a multiplier on each
layer's learned strength: 0 = none, 1 = as trained) and which pattern (``noise_seed``, new on an
onset). StyleGAN2 layers add ``noise_const * noise_strength``; for each call we put a
``[N, 1, R, R]`` map (the seed's pattern times the request's strength, one per batch item) in
place of each layer's ``noise_const`` buffer and put the original back afterwards, so the
network code stays untouched and one call may mix seeds and strengths across its batch.

Patterns are drawn from a CPU ``torch.Generator`` seeded with ``noise_seed``, layer by layer in
network order: the same seed gives the same pattern on every device and every run, which keeps
offline renders byte-identical and a replayed set frame-exact. The few most recent patterns stay
cached on the device (seeds change only on onsets) and the per-batch maps are preallocated.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Callable

import numpy as np
import torch

from phosphene.live.show.director import LatentRequest

PATTERN_CACHE_SIZE = 8


def noise_layers(G) -> list[torch.nn.Module]:
    """The synthesis layers that add noise, in network order."""
    return [m for m in G.synthesis.modules() if getattr(m, "use_noise", False)
            and hasattr(m, "noise_const")]


class FrameGenerator:
    """Renders ``LatentRequest``s with generator ``G`` on ``device``.

    ``generate(request)`` -> ``[1, C, H, W]``; ``generate([r0, r1, ...])`` -> ``[N, C, H, W]``;
    float32 on the device, nominal [-1, 1]. Not thread-safe: one worker owns it (it swaps
    ``G``'s noise buffers during a call).
    """

    def __init__(self, G, device: torch.device | str | None = None, *, max_batch: int = 8,
                 synthesis: Callable[..., torch.Tensor] | None = None,
                 force_fp32: bool = False):
        self.device = torch.device(device) if device is not None else next(G.parameters()).device
        self.G = G.to(self.device).eval().requires_grad_(False)
        self.synthesis = synthesis or G.synthesis
        self.force_fp32 = force_fp32
        self.num_ws, self.w_dim = int(G.num_ws), int(G.w_dim)
        self.max_batch = max(int(max_batch), 1)
        self._layers = noise_layers(G)
        with torch.no_grad():
            # a network trained (or built) without noise: skip the maps entirely
            self._has_noise = any(float(layer.noise_strength) != 0.0 for layer in self._layers)
        self._patterns: OrderedDict[int, list[torch.Tensor]] = OrderedDict()
        self._maps = [torch.empty([self.max_batch, 1, *layer.noise_const.shape[-2:]],
                                  device=self.device) for layer in self._layers] \
            if self._has_noise else []

    # -- noise -----------------------------------------------------------------------------------
    def pattern(self, seed: int) -> list[torch.Tensor]:
        """The noise maps of ``seed``: one ``[R, R]`` unit-normal map per noise layer."""
        cached = self._patterns.get(seed)
        if cached is not None:
            self._patterns.move_to_end(seed)
            return cached
        rng = torch.Generator(device="cpu").manual_seed(int(seed) % (2 ** 63))
        maps = [torch.randn(tuple(layer.noise_const.shape[-2:]), generator=rng).to(self.device)
                for layer in self._layers]
        self._patterns[seed] = maps
        while len(self._patterns) > PATTERN_CACHE_SIZE:
            self._patterns.popitem(last=False)
        return maps

    def _noise_maps(self, requests: Sequence[LatentRequest]) -> list[torch.Tensor] | None:
        if not self._has_noise or all(r.noise_strength == 0.0 for r in requests):
            return None
        n = len(requests)
        patterns = [self.pattern(r.noise_seed) for r in requests]
        out = []
        for li, buf in enumerate(self._maps):
            maps = buf[:n]
            for i, r in enumerate(requests):
                torch.mul(patterns[i][li], float(r.noise_strength), out=maps[i, 0])
            out.append(maps)
        return out

    # -- frames ----------------------------------------------------------------------------------
    def ws(self, requests: Sequence[LatentRequest]) -> torch.Tensor:
        w = np.stack([np.asarray(r.w, dtype=np.float32) for r in requests])
        if w.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"latent request w has shape {list(w.shape[1:])}, this generator "
                             f"takes [{self.num_ws}, {self.w_dim}]")
        return torch.from_numpy(w).to(self.device)

    def generate(self, requests: LatentRequest | Sequence[LatentRequest]) -> torch.Tensor:
        """Frames for one request or a batch (split into ``max_batch`` chunks if longer)."""
        if isinstance(requests, LatentRequest):
            requests = [requests]
        if not requests:
            raise ValueError("generate() needs at least one latent request")
        if len(requests) > self.max_batch:
            return torch.cat([self.generate(requests[i:i + self.max_batch])
                              for i in range(0, len(requests), self.max_batch)])
        with torch.inference_mode():
            ws = self.ws(requests)
            maps = self._noise_maps(requests)
            if maps is None:
                return self.synthesis(ws, noise_mode="none", force_fp32=self.force_fp32)
            originals = [layer.noise_const for layer in self._layers]
            try:
                for layer, m in zip(self._layers, maps):
                    layer.noise_const = m
                return self.synthesis(ws, noise_mode="const", force_fp32=self.force_fp32)
            finally:
                for layer, original in zip(self._layers, originals):
                    layer.noise_const = original
