"""Network bending in presets: the ``bend:`` list, its parameters and what a request carries.

A preset's ``bend:`` lists feature-map operations inserted into the synthesis network after the
block of resolution ``at``, on a subset of its channels (the ops themselves, in torch, are
``phosphene.models.stylegan2.bending``)::

    bend:
      - {op: rotate, at: 32, channels: "0-63", angle: 0}
      - {op: translate, at: 16, channels: 0.5, x: 0.25, y: 0, edge: wrap}
      - {op: ablate, at: 64, channels: [3, 7, 12]}

Each numeric parameter of an op is a show parameter ``bend.<i>.<name>`` (``bend.0.angle``),
starting at the value written (or the op's default), so it can be mapped to audio, bound to a
MIDI CC, sent over OSC and overridden in ``parameters:`` like any other. Every hop the show
puts the current values into the ``LatentRequest`` (``Bend`` tuples), so a bend is a pure
function of the request: offline batches may hold different values per frame, and a replay
bends exactly as the live run did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, field_validator, model_serializer, model_validator

from phosphene.live.show.params import ParameterSpec


@dataclass(frozen=True)
class BendParam:
    name: str
    minimum: float
    maximum: float
    default: float
    help: str


_AMOUNT = "0 = untouched, 1 = fully applied"

# op -> its numeric parameters (the names the torch ops take) and structural options
BEND_OPS: dict[str, tuple[tuple[BendParam, ...], tuple[str, ...]]] = {
    "translate": ((BendParam("x", -1.0, 1.0, 0.0, "shift right, in fractions of the map"),
                   BendParam("y", -1.0, 1.0, 0.0, "shift down, in fractions of the map")),
                  ("edge",)),
    "rotate": ((BendParam("angle", -180.0, 180.0, 0.0, "rotation in degrees, counter-clockwise"),),
               ("edge",)),
    "scale": ((BendParam("factor", 0.25, 4.0, 1.0, "zoom about the centre (> 1 magnifies)"),),
              ("edge",)),
    "flip": ((BendParam("amount", 0.0, 1.0, 1.0, f"mirror image faded in: {_AMOUNT}"),),
             ("axis",)),
    "erode": ((BendParam("size", 1.0, 15.0, 3.0, "minimum filter size (odd; 1 = off)"),), ()),
    "dilate": ((BendParam("size", 1.0, 15.0, 3.0, "maximum filter size (odd; 1 = off)"),), ()),
    "invert": ((BendParam("amount", 0.0, 1.0, 1.0, f"features negated: {_AMOUNT}"),), ()),
    "ablate": ((BendParam("amount", 0.0, 1.0, 1.0, f"features zeroed: {_AMOUNT}"),), ()),
}
BEND_SMOOTHING_MS = 40.0          # a fader or a MIDI knob glides, an audio mapping does not wait

_RANGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")

ChannelSpec = Union[str, float, tuple[int, ...]]


def _channels(value: Any) -> ChannelSpec:
    """``all``, ``"A-B"`` (inclusive), a list of indices or a fraction in (0, 1]."""
    if isinstance(value, bool):
        raise ValueError("channels: give all, \"A-B\", a list of indices or a fraction in (0, 1]")
    if isinstance(value, str):
        if value == "all":
            return value
        m = _RANGE_RE.match(value)
        if m is None or int(m.group(1)) > int(m.group(2)):
            raise ValueError(f"channels: {value!r} is not all or a range \"A-B\" with A <= B")
        return f"{int(m.group(1))}-{int(m.group(2))}"
    if isinstance(value, int):
        raise ValueError(f"channels: {value} - for one channel write a list [{value}]; a "
                         "fraction is a number in (0, 1] such as 0.5")
    if isinstance(value, float):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"channels: the fraction {value} must be in (0, 1]")
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value):
        return tuple(sorted(set(value)))
    raise ValueError("channels: give all, \"A-B\", a non-empty list of indices >= 0 or a "
                     "fraction in (0, 1]")


class BendModel(BaseModel):
    """One entry of ``bend:``; the op's parameters are written inline (``angle: 30``)."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["translate", "rotate", "scale", "flip", "erode", "dilate", "invert", "ablate"]
    at: int
    channels: ChannelSpec = "all"
    edge: Literal["wrap", "zeros", "border", "reflection"] | None = None
    axis: Literal["h", "v", "both"] | None = None
    params: dict[str, float] = {}

    @model_validator(mode="before")
    @classmethod
    def _inline_params(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        op = data.get("op")
        if op not in BEND_OPS:
            raise ValueError(f"op {op!r} is not a bend op; allowed: {', '.join(BEND_OPS)}")
        params, options = BEND_OPS[op]
        names = [p.name for p in params]
        allowed = ["op", "at", "channels", *options, *names]
        for key in data:
            if key not in allowed:
                raise ValueError(f"unknown key {key!r} for op {op}; allowed: {', '.join(allowed)}")
        values = {}
        for name in names:
            if name in data:
                value = data[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{name} must be a number, got {value!r}")
                values[name] = float(value)
        out = {k: v for k, v in data.items() if k not in names}
        out["params"] = values
        if "channels" in out:
            out["channels"] = _channels(out["channels"])
        return out

    @field_validator("at")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value < 4 or value & (value - 1):
            raise ValueError(f"{value} is not a block resolution (4, 8, 16, ... a power of "
                             "two)")
        return value

    @model_serializer(mode="wrap")
    def _dump_inline(self, handler) -> dict[str, Any]:
        data = handler(self)
        params = data.pop("params", {}) or {}
        return {k: v for k, v in data.items() if v is not None} | params

    def start(self, name: str) -> float:
        """The parameter's value as written, else the op's default."""
        default = next(p.default for p in BEND_OPS[self.op][0] if p.name == name)
        return self.params.get(name, default)

    def options(self) -> tuple[tuple[str, str], ...]:
        """The op's structural options, each with its default filled in."""
        defaults = {"edge": "wrap", "axis": "h"}
        return tuple((name, getattr(self, name) or defaults[name]) for name in BEND_OPS[self.op][1])


@dataclass(frozen=True)
class Bend:
    """One bend as the generator gets it: the op and where it acts (the same every hop of a
    preset) and its parameter values now, in ``BEND_OPS`` order."""

    index: int                                   # its place in the preset's bend list
    op: str
    at: int
    channels: ChannelSpec
    options: tuple[tuple[str, str], ...]
    values: tuple[float, ...]

    @property
    def structure(self) -> tuple:
        """Everything but the values: requests whose bends share it render in one batch."""
        return (self.index, self.op, self.at, self.channels, self.options)

    def params(self) -> dict[str, float]:
        return dict(zip(param_names(self.op), self.values))


def param_names(op: str) -> tuple[str, ...]:
    return tuple(p.name for p in BEND_OPS[op][0])


def parameter_name(index: int, param: str) -> str:
    return f"bend.{index}.{param}"


def bend_parameter_specs(bends: Sequence[BendModel]) -> dict[str, ParameterSpec]:
    """``bend.<i>.<param>`` for every op's numeric parameters, starting where the preset put
    them (a value written outside the usual range widens it: the preset says what it wants)."""
    specs = {}
    for i, bend in enumerate(bends):
        for p in BEND_OPS[bend.op][0]:
            name = parameter_name(i, p.name)
            start = bend.start(p.name)
            specs[name] = ParameterSpec(name, min(p.minimum, start), max(p.maximum, start), start,
                                        BEND_SMOOTHING_MS,
                                        f"{bend.op} at {bend.at}: {p.help}")
    return specs


def bends_now(bends: Sequence[BendModel], values: Mapping[str, float]) -> tuple[Bend, ...]:
    """The preset's bends with the parameters' current values."""
    return tuple(
        Bend(i, b.op, b.at, b.channels, b.options(),
             tuple(float(values.get(parameter_name(i, n), b.start(n))) for n in param_names(b.op)))
        for i, b in enumerate(bends))


def blend_bends(old: tuple[Bend, ...], new: tuple[Bend, ...], amount: float) -> tuple[Bend, ...]:
    """A preset crossfade: the same bends (op, place, channels) glide from the old values to
    the new ones; different ones switch half-way."""
    if [b.structure for b in old] != [b.structure for b in new]:
        return new if amount >= 0.5 else old
    return tuple(Bend(b.index, b.op, b.at, b.channels, b.options,
                      tuple(x + amount * (y - x) for x, y in zip(a.values, b.values)))
                 for a, b in zip(old, new))
