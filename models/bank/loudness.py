"""Bring a clip to the bank's sample rate and loudness (EBU R128 via pyloudnorm).

Clips from different sources (a cloned voice, a Jukebox render, a field recording) should
trigger at comparable loudness on stage, so every clip is normalised to one integrated
loudness target; the gain applied is recorded so the original level can be restored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# EBU R128's programme loudness target.
DEFAULT_TARGET_LUFS = -23.0
# Normalisation never pushes samples above this peak (dBFS): a quiet clip with one loud
# transient gets less gain rather than clipping.
PEAK_CEILING_DBFS = -1.0
# pyloudnorm's gating blocks are 400 ms long: shorter clips are measured tiled to this length.
_MIN_MEASURE_S = 0.4


@dataclass(frozen=True)
class LoudnessResult:
    samples: np.ndarray           # float32, shape (frames, channels), normalised
    original_lufs: float | None   # integrated loudness before gain (None: silent clip)
    loudness_lufs: float | None   # integrated loudness after gain
    gain_db: float                # gain applied
    peak_dbfs: float              # sample peak after gain (-inf for silence)


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``samples`` (frames, channels) from ``sr_in`` to ``sr_out`` Hz with soxr (VHQ)."""
    if sr_in == sr_out:
        return np.ascontiguousarray(samples, dtype=np.float32)
    import soxr
    return soxr.resample(np.asarray(samples, dtype=np.float32), sr_in, sr_out,
                         quality="VHQ").astype(np.float32, copy=False)


def integrated_loudness(samples: np.ndarray, sr: int) -> float | None:
    """Integrated loudness in LUFS (ITU-R BS.1770-4 / EBU R128), None for silence."""
    import pyloudnorm
    x = np.asarray(samples, dtype=np.float64)
    min_frames = int(np.ceil(_MIN_MEASURE_S * sr)) + 1
    if x.shape[0] == 0:
        return None
    if x.shape[0] < min_frames:
        # Tiling keeps the level of the material (zero padding would be gated out anyway).
        x = np.tile(x, (int(np.ceil(min_frames / x.shape[0])), 1))
    lufs = pyloudnorm.Meter(sr).integrated_loudness(x)
    return float(lufs) if np.isfinite(lufs) else None


def normalise_loudness(samples: np.ndarray, sr: int, target_lufs: float = DEFAULT_TARGET_LUFS,
                       peak_ceiling_dbfs: float = PEAK_CEILING_DBFS) -> LoudnessResult:
    """Scale ``samples`` (frames, channels) to ``target_lufs``, limited by the peak ceiling."""
    x = np.asarray(samples, dtype=np.float32)
    original = integrated_loudness(x, sr)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if original is None or peak == 0.0:
        return LoudnessResult(x, None, None, 0.0, -np.inf)
    gain_db = target_lufs - original
    peak_db = 20.0 * np.log10(peak)
    gain_db = min(gain_db, peak_ceiling_dbfs - peak_db)
    y = (x * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
    return LoudnessResult(y, original, integrated_loudness(y, sr), float(gain_db),
                          float(peak_db + gain_db))
