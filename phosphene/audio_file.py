"""Reading a whole audio file into memory: the one loader every area uses.

soundfile (libsndfile) reads WAV/FLAC/OGG and friends; anything it cannot open (MP3, AAC, the
audio track of a video) goes through PyAV (FFmpeg). Used by the live side's ``FileSource``
(offline analysis, rendering, rehearsing from a recording) and by ``render.video`` (the audio
track of a rendered video), so it lives at the package root: no device, GL or runtime import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError


@dataclass(frozen=True)
class AudioData:
    samples: np.ndarray  # (frames, channels) float32, 1.0 = full scale
    sample_rate: int
    path: Path

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def load_audio(path: str | Path) -> AudioData:
    """Read a whole audio file as float32 ``(frames, channels)``; a clear error if we can't."""
    path = Path(path)
    if not path.is_file():
        raise PhospheneError(f"audio file {str(path)!r} does not exist or is not a file")
    try:
        import soundfile as sf

        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as sf_error:  # noqa: BLE001 - libsndfile cannot read it: try FFmpeg
        samples, rate = _load_with_pyav(path, sf_error)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise PhospheneError(f"audio file {str(path)!r} has no audio channels")
    if samples.shape[0] == 0:
        raise PhospheneError(f"audio file {str(path)!r} contains no samples")
    return AudioData(np.ascontiguousarray(samples, dtype=np.float32), int(rate), path)


def _load_with_pyav(path: Path, sf_error: Exception) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise PhospheneError(f"{str(path)!r} has no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            # one float planar layout for every codec, channels kept apart
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout,
                                          rate=rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except PhospheneError:
        raise
    except Exception as av_error:  # noqa: BLE001 - neither library can read it
        raise PhospheneError(f"cannot read audio file {str(path)!r}: not a format libsndfile "
                             f"({sf_error}) or FFmpeg ({av_error}) understands") from None
    if not chunks:
        raise PhospheneError(f"audio file {str(path)!r} contains no samples")
    return np.concatenate(chunks, axis=1).T.astype(np.float32), int(rate)


def to_mono(samples: np.ndarray, channel: int | None = None) -> np.ndarray:
    """``(frames, channels)`` -> ``(frames,)``: the mean of all channels, or one channel."""
    if channel is None:
        return samples.mean(axis=1, dtype=np.float32)
    if not 0 <= channel < samples.shape[1]:
        raise PhospheneError(f"channel {channel} does not exist: the audio has "
                             f"{samples.shape[1]} channel(s), numbered from 0")
    return np.ascontiguousarray(samples[:, channel])
