"""Latent directions as parameters: ``directions:`` in a preset exposes ``dir.0 .. dir.N-1``.

```yaml
directions: {method: sefa, count: 8, layers: all, names: {2: zoom}, range: 3}
```

Each ``dir.k`` is a parameter in sigma units (the spread of the model's own latents along
direction k), from ``-range`` to ``+range``, 0 by default: a mapping target, a MIDI CC target,
``/phosphene/param/dir.k``. A name is the parameter's label (its help text and the grid's row
label); the parameter stays ``dir.k``, so renaming never breaks a mapping.

The directions themselves (unit vectors in W and their sigmas) are computed outside the pure
core (``phosphene.models.latent.directions``, through ``GeneratorFacts.directions``) and arrive
here as numpy arrays. The director adds ``sum_k dir.k * sigma_k * d_k`` to the w rows of the
layer spec, after truncation, and does nothing at all while every ``dir.k`` is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from phosphene.live.show.params import ParameterSpec
from phosphene.models.latent.layers import LAYER_SPEC_HELP, check_layer_spec

DIRECTION_PREFIX = "dir."
DIRECTION_SMOOTHING_MS = 80.0   # a knob glides like the mode weights' faders, no zipper steps
MAX_DIRECTIONS = 64


# (method, layers, samples or None for the method's default) -> a computed direction set:
# anything with ``vectors [n, w_dim]``, ``sigmas [n]`` and ``rows``
# (``phosphene.models.latent.directions.DirectionSet``)
DirectionSource = Callable[[str, str, int], Any]


def direction_parameter(k: int) -> str:
    return f"{DIRECTION_PREFIX}{k}"


class DirectionsModel(BaseModel):
    """The ``directions:`` section of a preset."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Literal["sefa", "ganspace"] = "sefa"
    count: int = Field(8, ge=1, le=MAX_DIRECTIONS)
    layers: str = Field("all", description=LAYER_SPEC_HELP)
    names: dict[int, str] = Field(default_factory=dict, description="labels: {index: name}")
    range_sigma: float = Field(3.0, gt=0.0, le=100.0, alias="range",
                               description="each dir.k runs from -range to +range sigma")
    samples: int | None = Field(None, ge=2, le=10_000_000,
                                description="w samples for ganspace's PCA and the sigmas; "
                                "default 10000 (ganspace), 2000 (sefa)")

    @field_validator("layers")
    @classmethod
    def _layer_spec(cls, value: str) -> str:
        return check_layer_spec(value)

    @model_validator(mode="after")
    def _names_in_range(self) -> "DirectionsModel":
        for k, name in self.names.items():
            if not 0 <= k < self.count:
                raise ValueError(f"names: direction {k} does not exist; count is {self.count} "
                                 f"(0..{self.count - 1})")
            if not name.strip():
                raise ValueError(f"names: direction {k} has an empty name")
        return self


def direction_parameter_specs(model: DirectionsModel) -> dict[str, ParameterSpec]:
    """``dir.0 .. dir.<count-1>``, in sigma, 0 by default; a name is the label."""
    specs = {}
    for k in range(model.count):
        what = f"{model.method} direction {k} ({model.layers} layers), in sigma"
        label = model.names.get(k)
        specs[direction_parameter(k)] = ParameterSpec(
            direction_parameter(k), -model.range_sigma, model.range_sigma, 0.0,
            DIRECTION_SMOOTHING_MS, f"{label}: {what}" if label else what)
    return specs


@dataclass(frozen=True)
class LatentDirections:
    """Directions the director adds: unit ``vectors [k, w_dim]``, their ``sigmas [k]``, and the
    w ``rows`` they act on."""

    vectors: np.ndarray
    sigmas: np.ndarray
    rows: tuple[int, ...]

    @classmethod
    def from_set(cls, found, count: int) -> "LatentDirections":
        """The first ``count`` of a computed direction set (anything with ``vectors``,
        ``sigmas`` and ``rows``: the core does not import the code that computes them)."""
        if len(found.vectors) < count:
            raise ValueError(f"directions: count {count}, but only {len(found.vectors)} "
                             "directions exist for this model")
        vectors = np.array(found.vectors[:count], dtype=np.float32)
        sigmas = np.array(found.sigmas[:count], dtype=np.float32)
        vectors.setflags(write=False)
        sigmas.setflags(write=False)
        return cls(vectors, sigmas, tuple(int(r) for r in found.rows))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(direction_parameter(k) for k in range(len(self.vectors)))

    def amounts(self, values: Mapping[str, float]) -> np.ndarray:
        return np.array([values.get(name, 0.0) for name in self.names], dtype=np.float32)

    def apply(self, w: np.ndarray, values: Mapping[str, float]) -> np.ndarray:
        """``w [num_ws, w_dim]`` moved by ``dir.k`` sigmas along each direction on its rows;
        ``w`` itself (untouched) while every ``dir.k`` is 0, so such frames stay identical."""
        amounts = self.amounts(values)
        if not amounts.any():
            return w
        offset = (amounts * self.sigmas) @ self.vectors
        out = np.array(w, dtype=np.float32, copy=True)
        out[list(self.rows)] += offset.astype(np.float32)
        return out
