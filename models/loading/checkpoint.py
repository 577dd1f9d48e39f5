"""What every format loader returns, and how it becomes a :class:`Generator`.

A loader turns a file into a :class:`Checkpoint`: the architecture (:class:`GeneratorConfig`)
and the weights under our (= NVlabs stylegan2-ada-pytorch) state_dict keys. Building the
network is shared, so every format gets the same strict key and shape check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from phosphene.errors import PhospheneError
from phosphene.models.stylegan2.config import GeneratorConfig
from phosphene.models.stylegan2.generator import Generator

# Buffers that are a pure function of the config (NVlabs' [1,3,3,1] filter, normalised); a
# converted checkpoint may omit them and gets the freshly built network's.
DERIVED_SUFFIXES = ("resample_filter",)


@dataclass
class Checkpoint:
    format: str                       # short format name, e.g. "nvlabs-pickle"
    config: GeneratorConfig
    state: dict[str, torch.Tensor]    # our key names
    notes: list[str] = field(default_factory=list)  # things the user should know (fallbacks)

    def num_params(self) -> int:
        """Trainable parameters (buffers such as w_avg, noise and filters excluded)."""
        buffers = ("w_avg", "noise_const") + DERIVED_SUFFIXES
        return sum(t.numel() for k, t in self.state.items() if not k.endswith(buffers))

    def build(self, device: torch.device | str | None = None):
        """The generator in eval mode with gradients off, on ``device`` (default: CPU)."""
        try:
            G = Generator(self.config)
        except (ValueError, AssertionError) as exc:
            raise PhospheneError(f"{self.format}: unsupported generator configuration: {exc}") from exc
        expected = G.state_dict()
        state = dict(self.state)
        unexpected = sorted(set(state) - set(expected))
        missing = sorted(k for k in set(expected) - set(state) if not k.endswith(DERIVED_SUFFIXES))
        if unexpected or missing:
            detail = []
            if missing:
                detail.append(f"missing {_few(missing)}")
            if unexpected:
                detail.append(f"unexpected {_few(unexpected)}")
            raise PhospheneError(f"{self.format}: weights do not match the architecture "
                                 f"({'; '.join(detail)})")
        for key, tensor in state.items():
            if tuple(tensor.shape) != tuple(expected[key].shape):
                raise PhospheneError(f"{self.format}: {key} has shape {list(tensor.shape)}, the "
                                     f"architecture expects {list(expected[key].shape)}")
        for key in set(expected) - set(state):
            state[key] = expected[key]
        G.load_state_dict(state, strict=True)
        G.eval().requires_grad_(False)
        return G.to(device) if device is not None else G


def _few(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def as_tensor(value, name: str) -> torch.Tensor:
    """A float32 CPU tensor from a tensor / numpy array (checkpoint values come as either)."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float32)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # keeps 0-d shape
    raise PhospheneError(f"{name}: expected an array, found {type(value).__name__}")
