"""Checks on the reference recording(s) a voice is cloned from.

Zero-shot cloning is only as good as its reference: a few seconds of clean speech at a decent
level. We load each file, check length, level and clipping, warn where cloning will suffer,
and resample to the speaker encoder's rate so the encoder sees exactly what was checked.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.models.bank.loudness import resample

log = logging.getLogger(__name__)

MIN_SECONDS = 1.0            # below this the speaker embedding is mostly noise: refuse
RECOMMENDED_SECONDS = 3.0    # YourTTS clones from a few seconds; shorter works, worse
QUIET_RMS_DBFS = -40.0       # quieter than this, the noise floor is a big part of the voice
CLIP_LEVEL = 0.999           # a sample at (nearly) full scale
CLIP_FRACTION = 0.001        # more than 0.1 % such samples: audibly clipped


@dataclass(frozen=True)
class Reference:
    path: Path
    sha256: str
    samples: np.ndarray    # mono float32 at ``sample_rate``
    sample_rate: int
    original_sample_rate: int
    duration_s: float
    rms_dbfs: float
    clipped_fraction: float
    warnings: tuple[str, ...]


def load_reference(path: str | Path, target_sample_rate: int) -> Reference:
    """Load, check and resample one reference recording; raises for unusable ones."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise PhospheneError(f"speaker recording {path} does not exist")
    try:
        data, sr = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's error types vary by version
        raise PhospheneError(f"cannot read speaker recording {path}: {exc}") from exc
    mono = data.mean(axis=1)
    duration = len(mono) / sr
    if duration < MIN_SECONDS:
        raise PhospheneError(f"speaker recording {path} is {duration:.2f} s long; at least "
                             f"{MIN_SECONDS:.0f} s of speech is needed ({RECOMMENDED_SECONDS:.0f} s "
                             "or more clones better)")
    if not np.all(np.isfinite(mono)):
        raise PhospheneError(f"speaker recording {path} contains NaN or infinite samples")
    rms = float(np.sqrt(np.mean(mono.astype(np.float64) ** 2)))
    rms_dbfs = 20 * np.log10(rms) if rms > 0 else -np.inf
    if rms_dbfs == -np.inf:
        raise PhospheneError(f"speaker recording {path} is silent")
    clipped = float(np.mean(np.abs(data) >= CLIP_LEVEL))
    warnings = []
    if duration < RECOMMENDED_SECONDS:
        warnings.append(f"{path.name} is only {duration:.1f} s long; {RECOMMENDED_SECONDS:.0f} s "
                        "or more of speech clones the voice better")
    if rms_dbfs < QUIET_RMS_DBFS:
        warnings.append(f"{path.name} is very quiet ({rms_dbfs:.0f} dBFS RMS); record closer "
                        "to the microphone or with more gain")
    if clipped > CLIP_FRACTION:
        warnings.append(f"{path.name} is clipped ({100 * clipped:.2f}% of samples at full "
                        "scale); distortion will be cloned too")
    for warning in warnings:
        log.warning("speaker recording: %s", warning)
    resampled = resample(mono[:, None], sr, target_sample_rate)[:, 0]
    return Reference(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                     samples=resampled, sample_rate=target_sample_rate, original_sample_rate=sr,
                     duration_s=duration, rms_dbfs=float(rms_dbfs), clipped_fraction=clipped,
                     warnings=tuple(warnings))
