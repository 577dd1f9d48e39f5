"""Model mixing: blend a second checkpoint of the same architecture into a generator's synthesis
network, one weight per block (coarse blocks from one model, fine from the other, or anything
between).

``ModelMixer(G, other)`` writes the blend into ``G.synthesis``'s own parameters, in place:
``set(weights)`` makes block ``i``'s parameters ``lerp(A_i, B_i, weights[i])`` (``A`` being
``G``'s own, kept aside), recomputing only the blocks whose weight changed. A weight of exactly
0 copies ``A`` back and 1 copies ``B``, so the ends are the two models bit for bit. Writing in
place keeps every other user of ``G.synthesis`` (a compiled live synthesis, the noise swapping
of the frame generator) working unchanged. The mapping network is not mixed: the latents stay
``G``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from phosphene.errors import PhospheneError

# config fields that change the synthesis network's parameters (names, shapes or meaning)
_ARCHITECTURE = ("w_dim", "img_resolution", "img_channels", "channel_base", "channel_max",
                 "architecture", "use_noise")


def architecture_differences(G, other) -> list[str]:
    """What differs between two generators' synthesis networks, in words (empty: they mix)."""
    config_a, config_b = getattr(G, "config", None), getattr(other, "config", None)
    out = []
    if config_a is not None and config_b is not None:
        out = [f"{name} {getattr(config_a, name)} vs {getattr(config_b, name)}"
               for name in _ARCHITECTURE if getattr(config_a, name) != getattr(config_b, name)]
    if out:
        return out
    a, b = dict(G.synthesis.named_parameters()), dict(other.synthesis.named_parameters())
    for name in sorted(set(a) | set(b)):
        if name not in b:
            return [f"{name} only in the first"]
        if name not in a:
            return [f"{name} only in the second"]
        if a[name].shape != b[name].shape:
            return [f"{name} has shape {list(a[name].shape)} vs {list(b[name].shape)}"]
    return []


class ModelMixer:
    """Blends ``other``'s synthesis parameters into ``G``'s, per block (see the module doc)."""

    def __init__(self, G: nn.Module, other: nn.Module, names: tuple[str, str] = ("A", "B")):
        differences = architecture_differences(G, other)
        if differences:
            raise PhospheneError(f"cannot mix {names[1]} into {names[0]}: not the same "
                                 f"architecture ({'; '.join(differences)})")
        self.G = G
        device = next(G.synthesis.parameters()).device
        other_params = dict(other.synthesis.named_parameters())
        self.blocks = G.synthesis.blocks()
        # per block: (the live parameter, A's values, B's values)
        self._params: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
        with torch.no_grad():
            for block in self.blocks:
                prefix = f"b{block.resolution}."
                entries = []
                for name, p in block.named_parameters():
                    b = other_params[prefix + name].detach().to(device=device, dtype=p.dtype)
                    entries.append((p, p.detach().clone(), b.clone()))
                self._params.append(entries)
        self.weights: tuple[float, ...] = (0.0,) * len(self.blocks)

    def set(self, weights: Sequence[float]) -> None:
        """Block ``i`` becomes ``lerp(A, B, weights[i])``; blocks whose weight did not change
        cost nothing."""
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(self.blocks):
            raise ValueError(f"{len(weights)} mix weights for {len(self.blocks)} blocks")
        with torch.no_grad():
            for i, (old, new) in enumerate(zip(self.weights, weights)):
                if new == old:
                    continue
                for p, a, b in self._params[i]:
                    if new == 0.0:
                        p.copy_(a)
                    elif new == 1.0:
                        p.copy_(b)
                    else:
                        torch.lerp(a, b, new, out=p)
        self.weights = weights

    def reset(self) -> None:
        """Back to ``G``'s own parameters, exactly."""
        self.set((0.0,) * len(self.blocks))
