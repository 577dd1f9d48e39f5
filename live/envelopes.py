"""Per-hop smoothers: an attack/release envelope follower and a slow automatic gain.

Both run once per hop on Python floats (a hop is 5 ms at 48 kHz), so their cost does not grow
with the block size; coefficients are computed once from times in ms/s.
"""

from __future__ import annotations

import math


def one_pole_coefficient(time_s: float, hop_s: float) -> float:
    """Per-hop smoothing coefficient of a one-pole filter with time constant ``time_s``
    (0 -> follow instantly)."""
    if time_s <= 0.0:
        return 0.0
    return math.exp(-hop_s / time_s)


class EnvelopeFollower:
    """Peak-style follower: rises with the attack time constant, falls with the release one."""

    __slots__ = ("_attack", "_release", "value")

    def __init__(self, attack_ms: float, release_ms: float, hop_s: float):
        self._attack = one_pole_coefficient(attack_ms / 1000.0, hop_s)
        self._release = one_pole_coefficient(release_ms / 1000.0, hop_s)
        self.value = 0.0

    def process(self, x: float) -> float:
        a = self._attack if x > self.value else self._release
        self.value = x + a * (self.value - x)
        return self.value


class SlowGain:
    """Automatic gain in dB that brings a level (dBFS) toward a target, slowly.

    The gain falls quickly-ish (``fall_s``) when the input gets louder, so a loud PA does not
    pin every parameter at 1 for long, and rises slowly (``rise_s``) when it gets quieter, so a
    pause between songs does not pump the noise floor up. The first level it sees sets the gain
    directly, so a quiet voice drives the full range from the start.
    """

    __slots__ = ("_target", "_rise", "_fall", "_min", "_max", "gain_db", "_started")

    def __init__(self, target_dbfs: float, rise_s: float, fall_s: float, min_gain_db: float,
                 max_gain_db: float, hop_s: float):
        self._target = target_dbfs
        self._rise = one_pole_coefficient(rise_s, hop_s)
        self._fall = one_pole_coefficient(fall_s, hop_s)
        self._min = min_gain_db
        self._max = max_gain_db
        self.gain_db = 0.0
        self._started = False

    def update(self, level_dbfs: float) -> float:
        wanted = min(max(self._target - level_dbfs, self._min), self._max)
        if not self._started:
            self.gain_db = wanted
            self._started = True
        else:
            a = self._fall if wanted < self.gain_db else self._rise
            self.gain_db = wanted + a * (self.gain_db - wanted)
        return self.gain_db
