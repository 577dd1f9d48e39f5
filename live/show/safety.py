"""Performer safety in the pure core: how the blackout fades (``Show.blackout``, ``panic``).

The timings are audio time, so a replay fades exactly as the show did. Going to black is quick
(it is a safety control); coming back is gentle. The blackout level drives the ``output``
effect's ``fade`` (always the last effect of a chain), on top of the preset's own fade.
"""

from __future__ import annotations

BLACKOUT_OUT_S = 0.2          # seconds from the picture to black
BLACKOUT_IN_S = 1.0           # seconds from black back to the picture
OUTPUT_FADE = "output.fade"   # the effect parameter the blackout drives


def combined_fade(own: float, blackout: float) -> float:
    """The output fade with a blackout on top: black when either is (1 = black)."""
    return 1.0 - (1.0 - own) * (1.0 - blackout)


def blackout_step(level: float, on: bool, dt_s: float) -> float:
    """The blackout level ``dt_s`` seconds later, heading to 1 (``on``) or 0."""
    if on:
        return min(level + dt_s / BLACKOUT_OUT_S, 1.0)
    return max(level - dt_s / BLACKOUT_IN_S, 0.0)
