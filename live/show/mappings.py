"""Mappings: a source (a feature, a fader, an LFO) drives a parameter.

Each mapping follows its source with an attack/release envelope, bends it with a curve, scales it
with gain and offset, and adds the result to the target parameter's own value (set by presets,
OSC, MIDI). Several mappings may add onto one target; the sum is clamped to the target's range.

Sources (strings, as written in presets):

* a feature: ``level``, ``onset``, ``onset_strength``, ``low``, ``mid``, ``high``, ``centroid``,
  ``flatness``, ``beat``, ``beat_phase``, and the song's structure: ``novelty``, ``section``,
  ``bar``, ``bar_phase``, ``phrase``, ``phrase_phase``, ``build``, ``drop``, ``breakdown`` (see
  ``phosphene.live.analysis.features.SOURCES``);
* ``param:<name>``: another parameter's value, i.e. a fader or knob set by OSC or MIDI;
* ``lfo:<shape>:<rate>`` with shape ``sine|tri|saw|square`` and rate ``<x>hz`` (cycles per
  second) or ``<x>beats`` (one cycle every x beats, locked to the tempo), output 0..1.

Everything advances with ``dt_s`` from the sample clock: pure and replayable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from phosphene.live.analysis.features import SOURCES, FeatureFrame
from phosphene.live.analysis.envelopes import smoothing_step
from phosphene.live.show.params import ParameterSet

CURVES = ("linear", "exp", "log")
LFO_SHAPES = ("sine", "tri", "saw", "square")
Curve = Literal["linear", "exp", "log"]

_LFO_RE = re.compile(r"^lfo:(?P<shape>[a-z]+):(?P<rate>[0-9]*\.?[0-9]+)(?P<unit>hz|beats?)$")


# -- sources --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    kind: Literal["feature", "param", "lfo"]
    name: str = ""                 # feature or parameter name
    shape: str = "sine"            # LFO shape
    rate: float = 1.0              # LFO: Hz, or beats per cycle
    unit: Literal["hz", "beats"] = "hz"


def parse_source(text: str) -> Source:
    """Parse a mapping source string; ``ValueError`` says what is allowed."""
    text = text.strip()
    if text in SOURCES:
        return Source("feature", text)
    if text.startswith("param:") and len(text) > len("param:"):
        return Source("param", text[len("param:"):])
    match = _LFO_RE.match(text)
    if match:
        shape = match["shape"]
        if shape not in LFO_SHAPES:
            raise ValueError(f"unknown LFO shape {shape!r}; allowed: {', '.join(LFO_SHAPES)}")
        rate = float(match["rate"])
        if rate <= 0:
            raise ValueError("LFO rate must be > 0")
        return Source("lfo", shape=shape, rate=rate,
                      unit="hz" if match["unit"] == "hz" else "beats")
    raise ValueError(
        f"unknown source {text!r}; allowed: a feature ({', '.join(SOURCES)}), "
        "'param:<name>', or 'lfo:<sine|tri|saw|square>:<rate>hz|<beats>beats'")


def lfo_value(shape: str, phase: float) -> float:
    """Unipolar (0..1) LFO waveform at ``phase`` cycles; every shape starts at 0."""
    phase = phase % 1.0
    if shape == "sine":
        return 0.5 - 0.5 * math.cos(2.0 * math.pi * phase)
    if shape == "tri":
        return 2.0 * phase if phase < 0.5 else 2.0 - 2.0 * phase
    if shape == "saw":
        return phase
    if shape == "square":
        return 1.0 if phase < 0.5 else 0.0
    raise ValueError(f"unknown LFO shape {shape!r}")


def lfo_cycles(source: Source, dt_s: float, tempo_bpm: float) -> float:
    """How many LFO cycles ``dt_s`` seconds advance (beat-locked LFOs follow the tempo)."""
    if source.unit == "hz":
        return dt_s * source.rate
    return dt_s * (tempo_bpm / 60.0) / source.rate


# -- curves and envelopes -------------------------------------------------------------------
def apply_curve(x: float, curve: str, k: float = 4.0) -> float:
    """Bend 0..1 onto 0..1. ``exp`` stays low then rises (quiet sounds do little), ``log`` rises
    early then flattens (quiet sounds already do a lot); ``k`` is how strong the bend is."""
    x = min(max(x, 0.0), 1.0)
    if curve == "linear" or k == 0.0:
        return x
    if curve == "exp":
        return (math.exp(k * x) - 1.0) / (math.exp(k) - 1.0)
    if curve == "log":
        return math.log1p((math.exp(k) - 1.0) * x) / k    # the inverse of "exp"
    raise ValueError(f"unknown curve {curve!r}; allowed: {', '.join(CURVES)}")


def follow(current: float, target: float, dt_s: float, attack_ms: float, release_ms: float) -> float:
    """Attack/release envelope follower: rises with ``attack_ms``, falls with ``release_ms``."""
    tau = attack_ms if target > current else release_ms
    k = smoothing_step(dt_s, tau / 1000.0)
    return target if k >= 1.0 else current + k * (target - current)


# -- mappings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mapping:
    source: str
    target: str
    gain: float = 1.0
    offset: float = 0.0
    curve: Curve = "linear"
    curve_k: float = 4.0
    attack_ms: float = 0.0
    release_ms: float = 0.0

    @property
    def parsed_source(self) -> Source:
        return parse_source(self.source)


@dataclass
class MappingState:
    envelope: float = 0.0
    lfo_phase: float = 0.0


@dataclass
class MappingBank:
    """All mappings of a scene and their envelope/LFO state."""

    mappings: list[Mapping] = field(default_factory=list)
    states: list[MappingState] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sources = [m.parsed_source for m in self.mappings]
        while len(self.states) < len(self.mappings):
            self.states.append(MappingState())

    def source_value(self, index: int, frame: FeatureFrame, params: ParameterSet) -> float:
        source = self._sources[index]
        if source.kind == "feature":
            return frame.source(source.name)
        if source.kind == "param":
            return params.get(source.name) if source.name in params else 0.0
        return lfo_value(source.shape, self.states[index].lfo_phase)

    def step(self, frame: FeatureFrame, params: ParameterSet, dt_s: float,
             tempo_bpm: float, beat: float | None = None) -> dict[str, float]:
        """Advance every mapping by ``dt_s`` and return the summed contribution per target.
        ``beat``: an external clock's beat now (Link, MIDI clock); beat-synced LFOs then take
        their phase from it (a cycle of x beats starts on every x-th beat), else they count."""
        out: dict[str, float] = {}
        for i, (mapping, state) in enumerate(zip(self.mappings, self.states)):
            source = self._sources[i]
            if source.kind == "lfo" and source.unit == "beats" and beat is not None:
                state.lfo_phase = (beat / source.rate) % 1.0
            elif source.kind == "lfo":
                state.lfo_phase = (state.lfo_phase + lfo_cycles(source, dt_s, tempo_bpm)) % 1.0
            raw = self.source_value(i, frame, params)
            state.envelope = follow(state.envelope, raw, dt_s, mapping.attack_ms, mapping.release_ms)
            value = mapping.offset + mapping.gain * apply_curve(state.envelope, mapping.curve,
                                                                mapping.curve_k)
            out[mapping.target] = out.get(mapping.target, 0.0) + value
        return out


def modulated_values(params: ParameterSet, contributions: dict[str, float]) -> dict[str, float]:
    """Each parameter's value plus what mappings add, clamped to its range."""
    values = params.values()
    for name, add in contributions.items():
        if name in values:
            values[name] = params.spec(name).clamp(values[name] + add)
    return values
