"""Quantized actions: a preset switch, a keyframe step or a clip start that waits for the next
beat or bar, and fires early by the render latency so the change *lands* on the line.

What quantizes an event is said per message (a trailing ``beat|bar|off`` argument, see
``control/routes.py``) or by the running preset (``quantize:``); the routes know which
addresses may wait. This module only keeps time:

- **The grid.** With an external clock (Ableton Link, MIDI clock: ``Controls.beat_anchor``)
  the beat is the clock's, and a bar is ``BEATS_PER_BAR`` of its beats (Link's quantum), so a
  bar line here is the session's bar line. Without one, the analyzer's own beats and bars are
  counted (``FeatureFrame.beat``/``beat_phase``, ``bar``/``bar_phase``). No tempo at all (no
  clock, nothing locked yet): there is no line to wait for, and the event is done at once.
- **The target.** When an event arrives, its target is the first line that can still be met:
  the first one at least ``lookahead`` ahead of the hop it could be applied at. Each hop the
  line is predicted again from the grid as it is now (a tempo that moves while the event
  waits is followed), and the event is released before the hop whose end, plus the
  lookahead, is nearest the line.
- **The lookahead** is the time from a hop's analysis to the frame on screen (the engine
  measures it: ``RenderLatency``), so the picture changes on the line, not a latency later;
  for a clip it is the sound's (the output's queue and device buffer), and the clip starts
  on the sample that is heard on the line. Offline render and replay use none: a video frame
  shows its hop at its own time.
- **A cap.** Nothing waits longer than ``MAX_WAIT_S``: a clock that stops or a tempo lost
  while an event waits must not swallow the performer's action.

Pure and deterministic (no clock but the sample index), like the rest of ``show/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from phosphene.live.analysis.features import FeatureFrame

Quantize = Literal["off", "beat", "bar"]
QUANTIZE_MODES: tuple[str, ...] = ("off", "beat", "bar")
BEATS_PER_BAR = 4            # Link's default quantum; the analyzer's bars are 4 beats too
MAX_WAIT_S = 8.0             # two bars at 60 BPM: a lost clock never swallows an action

T = TypeVar("T")


@dataclass(frozen=True)
class Grid:
    """Where the lines are: ``position`` (in beats or bars) at sample ``at``, moving on at
    ``per_sample`` of them per sample."""

    position: float
    at: int
    per_sample: float

    def position_at(self, sample_index: int) -> float:
        return self.position + (sample_index - self.at) * self.per_sample

    def sample_of(self, position: float) -> float:
        return self.at + (position - self.position) / self.per_sample


@dataclass
class _Held(Generic[T]):
    item: T
    unit: str                 # "beat" | "bar"
    target: float             # the line it waits for (a whole number of beats or bars)
    since: int                # the clock when it arrived
    lookahead: int            # samples early it fires (a picture's or a sound's latency)


@dataclass(frozen=True)
class Release(Generic[T]):
    """An event let go: what it was waiting for, for the report."""

    item: T
    unit: str
    target: float
    line_sample: float | None       # where the line was predicted when it was let go
    applied_at: int                 # the clock it is applied at (before the next hop)
    lookahead: int                  # samples early it fired

    @property
    def start_sample(self) -> int:
        """The sample a sound should start at to be heard on the line (within the hop it is
        applied before, so a clip starts sample-exact rather than on the hop)."""
        if self.line_sample is None:
            return self.applied_at
        return max(self.applied_at, round(self.line_sample) - self.lookahead)


class Quantizer(Generic[T]):
    """Holds events until their line (module doc). ``observe`` every hop (after the show
    advanced), ``hold`` what should wait, ``due`` before each hop."""

    def __init__(self, sample_rate: int, hop_length: int):
        self.sample_rate, self.hop_length = int(sample_rate), int(hop_length)
        self._held: list[_Held[T]] = []
        # the analyzer's own grid: beats and bars counted from the frames
        self._beats = 0
        self._bars = 0
        self._frame: FeatureFrame | None = None
        self._external_beat: float | None = None    # an external clock's beat at the frame
        self._tempo_bpm = 0.0

    @property
    def waiting(self) -> int:
        return len(self._held)

    # -- the grid ---------------------------------------------------------------------------------
    def observe(self, frame: FeatureFrame, external_beat: float | None,
                tempo_bpm: float) -> None:
        """One hop happened: count the analyzer's beats and bars; ``external_beat``: an
        external clock's beat at the end of this hop (None without one); ``tempo_bpm``: the
        show's tempo (the clock's, when it has one)."""
        self._beats += bool(frame.beat)
        self._bars += bool(frame.bar)
        self._frame, self._external_beat, self._tempo_bpm = frame, external_beat, tempo_bpm

    def grid(self, unit: str) -> Grid | None:
        """The grid of ``unit`` (beat or bar) now; None when there is no tempo to keep."""
        frame = self._frame
        if frame is None:
            return None
        if self._external_beat is not None and self._tempo_bpm > 0.0:
            per_beat = self._tempo_bpm / 60.0 / self.sample_rate
            if unit == "beat":
                return Grid(self._external_beat, frame.sample_index, per_beat)
            return Grid(self._external_beat / BEATS_PER_BAR, frame.sample_index,
                        per_beat / BEATS_PER_BAR)
        if frame.tempo_bpm <= 0.0:
            return None
        beats_per_sample = frame.tempo_bpm / 60.0 / self.sample_rate
        if unit == "beat":
            return Grid(self._beats + frame.beat_phase, frame.sample_index, beats_per_sample)
        return Grid(self._bars + frame.bar_phase, frame.sample_index,
                    beats_per_sample / BEATS_PER_BAR)

    # -- holding ----------------------------------------------------------------------------------
    def hold(self, item: T, unit: str, clock: int, lookahead: int) -> bool:
        """Keep ``item`` until the next line of ``unit`` it can meet; False (do it now) when
        there is no grid to wait on."""
        grid = self.grid(unit)
        if grid is None:
            return False
        # the earliest it can land: applied before the next hop, on screen a lookahead later
        earliest = grid.position_at(clock + self.hop_length + lookahead)
        target = math.ceil(earliest - 1e-9)
        self._held.append(_Held(item, unit, float(target), clock, int(lookahead)))
        return True

    def due(self, clock: int) -> list[Release[T]]:
        """What to apply before the hop that starts at ``clock``, in arrival order: each event
        whose line falls nearer this hop's end (plus its lookahead) than the next hop's."""
        if not self._held:
            return []
        released: list[Release[T]] = []
        keep: list[_Held[T]] = []
        for held in self._held:
            grid = self.grid(held.unit)
            line = None if grid is None else grid.sample_of(held.target)
            landing = clock + self.hop_length + held.lookahead   # when this hop's change shows
            waited_s = (clock - held.since) / self.sample_rate
            if line is None or line - landing < self.hop_length / 2 or waited_s >= MAX_WAIT_S:
                released.append(Release(held.item, held.unit, held.target, line, clock,
                                        held.lookahead))
            else:
                keep.append(held)
        self._held = keep
        return released

    def drop_all(self) -> list[T]:
        """Forget what waits (panic); returns it."""
        items = [h.item for h in self._held]
        self._held = []
        return items
