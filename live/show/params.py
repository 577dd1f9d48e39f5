"""Named parameters: a value with a range, a default and a smoothing time.

A parameter is what a performer (OSC fader, MIDI knob, preset) sets. Setting one moves its
*target*; the value the director and the effects read glides there with a one-pole smoother
whose time constant is ``smoothing_ms``, so a jumpy fader does not make the picture jump.

Time advances only through ``ParameterSet.advance(dt_s)`` with ``dt_s`` derived from the audio
sample clock by the caller: nothing here reads a wall clock, so a run replays exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from phosphene.live.analysis.envelopes import smoothing_step


@dataclass(frozen=True)
class ParameterSpec:
    """What a parameter is: its name, allowed range, default and how fast it follows a change."""

    name: str
    minimum: float = 0.0
    maximum: float = 1.0
    default: float = 0.0
    smoothing_ms: float = 0.0    # one-pole time constant: after this long, 63 % of a step is done
    help: str = ""

    def __post_init__(self) -> None:
        if not self.minimum <= self.maximum:
            raise ValueError(f"parameter {self.name}: minimum {self.minimum} > maximum {self.maximum}")
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(f"parameter {self.name}: default {self.default} outside "
                             f"[{self.minimum}, {self.maximum}]")
        if self.smoothing_ms < 0:
            raise ValueError(f"parameter {self.name}: smoothing_ms must be >= 0")

    def clamp(self, value: float) -> float:
        return min(max(float(value), self.minimum), self.maximum)

    def contains(self, value: float) -> bool:
        return self.minimum <= value <= self.maximum


# Parameters every scene has. Effect parameters ("<effect>.<uniform>") and preset-defined ones
# are added on top of these.
BUILTIN_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("psi", 0.0, 2.0, 0.7, 150.0, "truncation psi: 0 = the average image, 1 = untruncated"),
    ParameterSpec("noise", 0.0, 2.0, 0.3, 80.0, "base strength of the per-pixel noise maps"),
    ParameterSpec("speed", 0.0, 8.0, 1.0, 200.0, "multiplier on drift speed"),
    ParameterSpec("blend", -1.0, 1.0, 0.0, 60.0, "offset added to the volume-blend position"),
    ParameterSpec("reactivity", 0.0, 4.0, 1.0, 100.0,
                  "master gain on every audio-driven latent motion"),
    ParameterSpec("tempo_bpm", 0.0, 300.0, 0.0, 0.0,
                  "tempo override in BPM (tap tempo / OSC); 0 follows the analyzer"),
    ParameterSpec("mode.volume-blend", 0.0, 1.0, 0.0, 300.0, "weight of the volume-blend mode"),
    ParameterSpec("mode.onset-step", 0.0, 1.0, 0.0, 300.0, "weight of the onset-step mode"),
    ParameterSpec("mode.drift", 0.0, 1.0, 0.0, 300.0, "weight of the drift mode"),
    ParameterSpec("mode.layer-split", 0.0, 1.0, 0.0, 300.0, "amount of the layer-split mode"),
    ParameterSpec("mode.travel", 0.0, 1.0, 0.0, 300.0,
                  "weight of the travel mode (0 stops it; its glide, build push and calm)"),
)


class ParameterSet:
    """The live values of a scene's parameters, each gliding toward its target."""

    def __init__(self, specs: "list[ParameterSpec] | tuple[ParameterSpec, ...]" = BUILTIN_PARAMETERS):
        self._specs: dict[str, ParameterSpec] = {}
        self._target: dict[str, float] = {}
        self._value: dict[str, float] = {}
        for spec in specs:
            self.define(spec)

    # -- definition ---------------------------------------------------------------------------
    def define(self, spec: ParameterSpec) -> None:
        """Add (or redefine) a parameter; a redefinition keeps the current value, clamped."""
        old = self._value.get(spec.name)
        self._specs[spec.name] = spec
        value = spec.default if old is None else spec.clamp(old)
        self._target[spec.name] = spec.clamp(self._target.get(spec.name, value))
        self._value[spec.name] = value

    @property
    def specs(self) -> dict[str, ParameterSpec]:
        return dict(self._specs)

    def spec(self, name: str) -> ParameterSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)

    # -- values -------------------------------------------------------------------------------
    def set(self, name: str, value: float, *, immediate: bool = False) -> float:
        """Move ``name``'s target to ``value`` (clamped to its range); returns the new target."""
        spec = self.spec(name)
        if not math.isfinite(value):
            raise ValueError(f"parameter {name}: value must be finite, got {value}")
        target = spec.clamp(value)
        self._target[name] = target
        if immediate:
            self._value[name] = target
        return target

    def set_normalised(self, name: str, amount: float) -> float:
        """Set from 0..1 (a MIDI CC, a fader) scaled onto the parameter's range."""
        spec = self.spec(name)
        amount = min(max(float(amount), 0.0), 1.0)
        return self.set(name, spec.minimum + amount * (spec.maximum - spec.minimum))

    def get(self, name: str) -> float:
        """The smoothed value."""
        try:
            return self._value[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name!r}") from None

    def target(self, name: str) -> float:
        return self._target[name]

    def values(self) -> dict[str, float]:
        return dict(self._value)

    def advance(self, dt_s: float) -> None:
        """Let every value glide toward its target for ``dt_s`` seconds of audio time."""
        if dt_s < 0:
            raise ValueError("time runs forward: dt_s must be >= 0")
        for name, spec in self._specs.items():
            k = smoothing_step(dt_s, spec.smoothing_ms / 1000.0)
            value, target = self._value[name], self._target[name]
            self._value[name] = target if k >= 1.0 else value + k * (target - value)
