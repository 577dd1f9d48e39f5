"""Controls: a scene's parameters, the mappings that modulate them, and its tempo.

Control events (OSC, MIDI, keys) change them through the routes (``control/routes.py``) and the
show's operations; here is only what the values are and how they move with the music.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.show.mappings import Mapping, MappingBank, modulated_values
from phosphene.live.show.params import ParameterSet
from phosphene.live.analysis.tap_tempo import TapTempo, effective_tempo


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
        # an external clock's beat (Ableton Link, MIDI clock): (sample index, beat there);
        # None: no external clock, beat-synced LFOs count their own cycles
        self.beat_anchor: tuple[int, float] | None = None

    def sync_beat(self, sample_index: int, beat: float) -> None:
        """An external clock says it is at ``beat`` at ``sample_index``; from here on the beat
        runs on at ``tempo_bpm`` until the next such event."""
        self.beat_anchor = (int(sample_index), float(beat))

    def beat_at(self, sample_index: int) -> float | None:
        """The external clock's beat at ``sample_index`` (None without one)."""
        if self.beat_anchor is None:
            return None
        anchor, beat = self.beat_anchor
        return beat + (sample_index - anchor) / self.sample_rate * self.tempo_bpm / 60.0

    def update(self, frame: FeatureFrame, dt_s: float) -> dict[str, float]:
        """Advance smoothing and mappings by ``dt_s``; returns every parameter's value now."""
        self.params.advance(dt_s)
        override = self.params.get("tempo_bpm") if "tempo_bpm" in self.params else 0.0
        self.tempo_bpm = effective_tempo(override, frame.tempo_bpm)
        contributions = self.bank.step(frame, self.params, dt_s, self.tempo_bpm,
                                       beat=self.beat_at(frame.sample_index))
        self.values = modulated_values(self.params, contributions)
        return self.values

    def effect_params(self, effect_names: "list[str]") -> dict[str, float]:
        """The ``"<effect>.<uniform>"`` values of the effects in the chain, for the renderer."""
        prefixes = tuple(f"{name}." for name in effect_names)
        return {k: v for k, v in self.values.items() if k.startswith(prefixes)}
