"""The last stage before a speaker: every sample that leaves through an output is finite and
below full scale.

A NaN or an infinity in a block (a broken clip file, a bad file, a bug upstream) would otherwise
reach the sound card, which plays it as full scale: ``np.clip`` lets NaN through. A sum of clips
and the monitored input can also exceed [-1, 1].

``safe_for_output`` (used once, in ``AudioOut.write``) first applies the rule every audio path
shares, ``phosphene.audio_file.sanitize_audio`` (NaN/inf -> 0, clipped to [-1, 1]), then a
*soft* limiter: transparent up to ``KNEE`` (-1.9 dBFS), above it a tanh curve that meets the
straight line with the same slope (no kink, so no sudden harmonics) and stays below
``CEILING`` (-0.18 dBFS; full scale, 1.0, maps to about -0.5 dBFS), so nothing leaves at full
scale. A hard clip at 1.0 puts square-wave edges at full power into a PA; the soft curve only
rounds the loudest peaks. It is memoryless (no gain envelope): no pumping, no look-ahead
latency, and nothing to reset when a device comes back.
"""

from __future__ import annotations

import numpy as np

from phosphene.audio_file import sanitize_audio

KNEE = 0.8        # below this (|x|), samples pass unchanged
CEILING = 0.98    # |output| stays below this, so never at full scale


def safe_for_output(block: np.ndarray) -> np.ndarray:
    """``block`` (any shape) as float32 with NaN/inf set to 0 and soft-limited into
    ``(-CEILING, CEILING)``. Returns a new array; the input is not modified."""
    x = sanitize_audio(np.asarray(block, dtype=np.float32))    # a new array: finite, in [-1, 1]
    magnitude = np.abs(x)
    loud = magnitude > KNEE
    if loud.any():
        room = CEILING - KNEE
        m = magnitude[loud]
        # knee + room * tanh((m - knee) / room): slope 1 at the knee, -> CEILING as m grows
        x[loud] = np.sign(x[loud]) * (KNEE + room * np.tanh((m - KNEE) / room))
    return x
