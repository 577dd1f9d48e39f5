"""Shared material for the offline-render and recording tests: a click file with known onsets
and a preset whose only motion is an onset -> flash mapping, so frame brightness tells exactly
where the show heard an onset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050
CLICK_TIMES = (0.6, 1.4)
DURATION_S = 2.0

# Every latent mode is off (weights 0) and builtin:abstract has no noise, so the generator frame
# never changes: only the flash effect, driven by onsets, changes the picture.
FLASH_PRESET = """\
name: flash-test
model: builtin:abstract
output: {width: 64, height: 64, fps: 12}
keyframes:
  - seed: 1
  - seed: 2
modes:
  noise: {onset_amount: 0.0}
mappings:
  - {source: onset, target: flash.amount, gain: 1.0, release_ms: 150}
effects:
  - {name: color, params: {saturation: 1.0}}
  - {name: flash, params: {amount: 0.0}}
"""

# For replays: everything moves (modes, mappings, a trail effect), so a replay that drifts from
# the live run by one hop shows up in the values and the pixels.
BUSY_PRESET = """\
name: busy-test
model: builtin:abstract
output: {width: 64, height: 64, fps: 12}
keyframes: [{seed: 3}, {seed: 4}, {seed: 5}]
transition_ms: 200
modes:
  volume-blend: {weight: 0.7, source: level}
  onset-step: {weight: 1.0, length: 150, unit: ms}
  drift: {weight: 0.3, period: 1.0, unit: seconds}
mappings:
  - {source: onset, target: flash.amount, gain: 0.8, release_ms: 100}
  - {source: level, target: feedback.decay, gain: 0.5}
effects:
  - {name: feedback, params: {decay: 0.5}}
  - {name: flash}
"""


def write_clicks(path: Path, times=CLICK_TIMES, duration_s: float = DURATION_S,
                 sr: int = SR) -> Path:
    """Short broadband bursts over a quiet hum (a silent file would close the noise gate)."""
    n = int(round(duration_s * sr))
    t = np.arange(n) / sr
    x = 0.01 * np.sin(2 * np.pi * 110 * t)
    rng = np.random.default_rng(7)
    for onset in (t for t in times if t < duration_s):
        i = int(round(onset * sr))
        m = min(int(0.03 * sr), n - i)
        x[i:i + m] += 0.8 * rng.uniform(-1, 1, m) * np.exp(-np.arange(m) / (0.008 * sr))
    sf.write(path, x.astype(np.float32), sr)
    return path


def write_preset(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def brightness(pixels: np.ndarray) -> float:
    return float(np.asarray(pixels, dtype=np.float64).mean())
