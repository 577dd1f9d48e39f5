"""Controls: parameters + mappings + tempo, and how a control event changes them.

OSC and MIDI both turn what they receive into a ``ControlEvent`` (an OSC-style address and its
arguments, stamped with the audio sample index). The engine drains the events at the start of
each analysis hop and calls ``apply_control_event``; events this module does not own (presets,
clips, MIDI learn, status) are left to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phosphene.live.director import Director
from phosphene.live.features import FeatureFrame
from phosphene.live.mappings import Mapping, MappingBank, modulated_values
from phosphene.live.params import ParameterSet
from phosphene.live.tap_tempo import TapTempo, effective_tempo

PREFIX = "/phosphene/"


@dataclass(frozen=True)
class ControlEvent:
    sample_index: int                 # audio clock when it arrived
    address: str                      # e.g. "/phosphene/param/psi"
    args: tuple[Any, ...] = ()
    origin: str = "osc"               # "osc" | "midi" | "key"


@dataclass
class Controls:
    """The live parameter values of a scene and everything that modulates them."""

    params: ParameterSet
    mappings: list[Mapping] = field(default_factory=list)
    sample_rate: int = 48000
    effects_enabled: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bank = MappingBank(list(self.mappings))
        self.tap = TapTempo(self.sample_rate)
        self.values: dict[str, float] = self.params.values()
        self.tempo_bpm = effective_tempo(self.params.get("tempo_bpm"), 0.0) \
            if "tempo_bpm" in self.params else 120.0

    def update(self, frame: FeatureFrame, dt_s: float) -> dict[str, float]:
        """Advance smoothing and mappings by ``dt_s``; returns every parameter's value now."""
        self.params.advance(dt_s)
        override = self.params.get("tempo_bpm") if "tempo_bpm" in self.params else 0.0
        self.tempo_bpm = effective_tempo(override, frame.tempo_bpm)
        contributions = self.bank.step(frame, self.params, dt_s, self.tempo_bpm)
        self.values = modulated_values(self.params, contributions)
        return self.values

    def effect_params(self, effect_names: "list[str]") -> dict[str, float]:
        """The ``"<effect>.<uniform>"`` values of the effects in the chain, for the renderer."""
        prefixes = tuple(f"{name}." for name in effect_names)
        return {k: v for k, v in self.values.items() if k.startswith(prefixes)}


def apply_control_event(event: ControlEvent, controls: Controls, director: Director) -> bool:
    """Apply an already-validated event; returns False when it is not a controls/director
    event (preset, clip, MIDI learn, status: the engine's). Never raises on a bad value: the
    server validated it, and a stale name (preset changed meanwhile) is ignored."""
    if not event.address.startswith(PREFIX):
        return False
    parts = event.address[len(PREFIX):].split("/")
    head, args = parts[0], event.args
    params = controls.params
    try:
        if head == "param" and len(parts) == 2:
            if parts[1] in params:
                params.set(parts[1], float(args[0]))
            return True
        if head == "mode" and len(parts) == 2:
            name = f"mode.{parts[1]}"
            if name in params:
                params.set(name, float(args[0]))
            return True
        if head == "effect" and len(parts) == 3:
            effect, what = parts[1], parts[2]
            if what == "enable":
                controls.effects_enabled[effect] = bool(int(args[0]))
            elif f"{effect}.{what}" in params:
                params.set(f"{effect}.{what}", float(args[0]))
            return True
        if head == "tempo" and len(parts) == 2:
            if parts[1] == "tap":
                bpm = controls.tap.tap(event.sample_index)
                if bpm is not None:
                    params.set("tempo_bpm", bpm, immediate=True)
            elif parts[1] == "bpm":
                params.set("tempo_bpm", float(args[0]), immediate=True)
            return True
        if head == "keyframe" and len(parts) == 2:
            what = parts[1]
            if what == "next":
                director.step(+1)
            elif what == "prev":
                director.step(-1)
            elif what == "goto":
                director.goto(int(args[0]))
            elif what == "capture":
                director.capture()
            return True
    except (ValueError, IndexError, KeyError, TypeError):
        return True        # validated upstream; a stale event is dropped, the show goes on
    return False
