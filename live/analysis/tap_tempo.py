"""Tempo from the performer: tap tempo, and which tempo the scene follows.

Taps are stamped with the audio sample index like everything else, so a recorded set replays
with the same tempo. ``TapTempo`` is the one tap-tempo implementation: the show's controls use
it for the ``tempo_bpm`` override, and ``Analyzer.tap`` uses it to hand a tapped tempo to the
analyzer's beat tracker (``tempo.py``, ``TempoTracker.tap``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

FALLBACK_BPM = 120.0     # when neither the performer nor the analyzer gives a tempo


@dataclass
class TapTempo:
    """Median of the last few tap intervals; a pause longer than ``reset_s`` starts over."""

    sample_rate: int
    max_taps: int = 8
    reset_s: float = 2.0
    taps: list[int] = field(default_factory=list)

    def tap(self, sample_index: int) -> float | None:
        """Register a tap; returns the tempo in BPM once there are two taps, else None."""
        if self.taps and (sample_index - self.taps[-1]) / self.sample_rate > self.reset_s:
            self.taps.clear()
        if self.taps and sample_index <= self.taps[-1]:
            return None            # a duplicate or out-of-order tap carries no interval
        self.taps.append(sample_index)
        del self.taps[:-self.max_taps]
        if len(self.taps) < 2:
            return None
        intervals = [b - a for a, b in zip(self.taps, self.taps[1:])]
        # the median ignores one fumbled tap among several good ones
        return 60.0 * self.sample_rate / statistics.median(intervals)


def effective_tempo(override_bpm: float, analyzer_bpm: float) -> float:
    """The tempo the scene follows: the performer's if set, else the analyzer's, else 120."""
    if override_bpm > 0.0:
        return override_bpm
    if analyzer_bpm > 0.0:
        return analyzer_bpm
    return FALLBACK_BPM
