"""One-pole smoothing: its coefficients, an attack/release envelope follower and a slow
automatic gain.

The two coefficient functions are the one definition of one-pole smoothing in phosphene; the
analyzer (per hop) and the show's parameters and mappings (per frame or event) both use them.
A one-pole smoother with time constant ``tau`` moves ``y`` toward ``x`` over ``dt`` seconds as
``y += step * (x - y)``, ``step = 1 - exp(-dt / tau)``, or equivalently
``y = x + retain * (y - x)``, ``retain = exp(-dt / tau)``. Both forms are kept because each
caller's arithmetic is part of the numbers it produces (renders are compared bit for bit).

The follower and the gain run once per hop on Python floats (a hop is 5 ms at 48 kHz), so
their cost does not grow with the block size; coefficients are computed once from times in ms/s.
"""

from __future__ import annotations

import math

# A decaying state (filter memory, envelope) below this is set to exactly 0.0: as an amplitude
# it is -600 dBFS, no sound at all, and it keeps every value far from the subnormal range
# (below ~2.2e-308), where arithmetic is slow and a quotient can round to zero.
FLUSH_BELOW = 1e-30


def smoothing_retain(dt_s: float, time_constant_s: float) -> float:
    """Fraction of the distance to the target a one-pole smoother still has to go after
    ``dt_s`` seconds: ``exp(-dt_s / time_constant_s)``. A time constant <= 0 follows
    instantly (0.0)."""
    if time_constant_s <= 0.0:
        return 0.0
    return math.exp(-dt_s / time_constant_s)


def smoothing_step(dt_s: float, time_constant_s: float) -> float:
    """Fraction of the distance to the target a one-pole smoother covers in ``dt_s`` seconds:
    ``1 - exp(-dt_s / time_constant_s)``, exact for any step size, so the result does not depend
    on how time was sliced into hops or frames. A time constant <= 0 follows instantly (1.0)."""
    return 1.0 - smoothing_retain(dt_s, time_constant_s)


class EnvelopeFollower:
    """Peak-style follower: rises with the attack time constant, falls with the release one."""

    __slots__ = ("_attack", "_release", "value")

    def __init__(self, attack_ms: float, release_ms: float, hop_s: float):
        self._attack = smoothing_retain(hop_s, attack_ms / 1000.0)
        self._release = smoothing_retain(hop_s, release_ms / 1000.0)
        self.value = 0.0

    def process(self, x: float) -> float:
        a = self._attack if x > self.value else self._release
        value = x + a * (self.value - x)
        # released to silence, the value would sink through the subnormals for ever: a value
        # this small (far below anything a parameter can show) is zero
        self.value = value if abs(value) >= FLUSH_BELOW else 0.0
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
        self._rise = smoothing_retain(hop_s, rise_s)
        self._fall = smoothing_retain(hop_s, fall_s)
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
