"""Model mixing in presets: a second checkpoint of the same architecture blended in per block.

::

    mix:
      model: finetuned.pkl            # relative to the preset's folder, or any load_generator ref
      blend: {coarse: 0, middle: 0.5, fine: 1}

``blend`` keys are ``all``, the groups ``coarse`` (blocks 4-8 px), ``middle`` (16-32 px) and
``fine`` (64 px and up), or a block resolution (``64: 0.8``); a block takes its own
resolution's weight, else its group's, else ``all``'s, else 0. A plain number is ``all``.
Each key is a parameter ``mix.<key>`` (0 = the preset's model, 1 = the mix model), mappable
like any other. Every hop the show puts the per-block weights into the ``LatentRequest``
(``Mix``), so mixing is a pure function of the request (offline batches, replays).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from phosphene.live.show.params import ParameterSpec

GROUPS = ("all", "coarse", "middle", "fine")
MIX_SMOOTHING_MS = 80.0


def block_group(resolution: int) -> str:
    """StyleGAN's coarse / middle / fine styles (Karras et al. 2019): 4-8, 16-32, 64 and up."""
    return "coarse" if resolution <= 8 else "middle" if resolution <= 32 else "fine"


def block_resolutions(num_ws: int) -> list[int]:
    """The synthesis blocks' resolutions of a network taking ``num_ws`` w rows."""
    top = (num_ws + 2) // 2                       # num_ws = 2 * log2(resolution) - 2
    return [2 ** i for i in range(2, top + 1)]


class MixModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="the second checkpoint (same architecture)")
    blend: dict[str, float] = Field(default_factory=lambda: {"all": 0.5})

    @field_validator("blend", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = {"all": value}
        if not isinstance(value, dict) or not value:
            raise ValueError("give a weight 0..1, or weights by all / coarse / middle / fine "
                             "or block resolution, e.g. {coarse: 0, fine: 1}")
        out = {}
        for key, weight in value.items():
            name = str(key)
            if name not in GROUPS and not (name.isdigit() and int(name) >= 4
                                           and int(name) & (int(name) - 1) == 0):
                raise ValueError(f"{name}: not a blend key; allowed: {', '.join(GROUPS)} or a "
                                 "block resolution (4, 8, 16, ...)")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not 0.0 <= weight <= 1.0:
                raise ValueError(f"{name}: the weight must be a number in 0..1, got {weight!r}")
            out[name] = float(weight)
        return out


@dataclass(frozen=True)
class Mix:
    """What the generator mixes: the second model and one weight per synthesis block (lowest
    resolution first; 0 = the show's model, 1 = the mix model)."""

    model: str
    weights: tuple[float, ...]


def parameter_name(key: str) -> str:
    return f"mix.{key}"


def mix_parameter_specs(mix: MixModel) -> dict[str, ParameterSpec]:
    return {parameter_name(k): ParameterSpec(parameter_name(k), 0.0, 1.0, w, MIX_SMOOTHING_MS,
                                             f"model mix ({k}): 0 = the preset's model, 1 = "
                                             f"{mix.model}")
            for k, w in mix.blend.items()}


def resolve_model(ref: str, base_dir: Path | None) -> str:
    """A mix model named relative to the preset's folder becomes that file's path (a name
    with a file suffix is taken as a file there even when missing, so the error says where it
    looked); anything else (``builtin:``, a URL, a zoo name, an absolute path) is passed on as
    written."""
    if base_dir is not None and ":" not in ref and not Path(ref).expanduser().is_absolute():
        candidate = base_dir / ref
        if candidate.exists() or Path(ref).suffix:
            return str(candidate)
    return str(Path(ref).expanduser()) if ref.startswith("~") else ref


def mix_now(mix: MixModel, model: str, values: Mapping[str, float], num_ws: int) -> Mix:
    """Per-block weights from the ``mix.<key>`` parameters' current values."""
    def weight(res: int) -> float:
        for key in (str(res), block_group(res), "all"):
            if key in mix.blend:
                return float(values.get(parameter_name(key), mix.blend[key]))
        return 0.0
    return Mix(model, tuple(weight(r) for r in block_resolutions(num_ws)))


def blend_mix(old: Mix | None, new: Mix | None, amount: float) -> Mix | None:
    """A preset crossfade: the same mix model glides from the old weights to the new; a
    different one (or none) switches half-way."""
    if old is None or new is None or old.model != new.model \
            or len(old.weights) != len(new.weights):
        return new if amount >= 0.5 else old
    return Mix(new.model, tuple(a + amount * (b - a) for a, b in zip(old.weights, new.weights)))
