"""Audio files as a block source: the same hop-sized mono blocks a live input delivers.

soundfile (libsndfile) reads WAV/FLAC/OGG and friends; anything it cannot open (MP3, AAC, the
audio track of a video) goes through PyAV (FFmpeg). Blocks come as fast as the consumer takes
them (offline analysis, rendering) or paced to the wall clock (``realtime=True``, for
rehearsing a set from a recording).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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


class FileSource:
    """Hop-sized mono blocks from a file: the offline twin of ``AudioIn``."""

    def __init__(self, path: str | Path, channel: int | None = None):
        audio = load_audio(path)
        self.path = audio.path
        self.sample_rate = audio.sample_rate
        self.channels = audio.samples.shape[1]
        self.mono = to_mono(audio.samples, channel)

    @property
    def duration_s(self) -> float:
        return len(self.mono) / self.sample_rate

    def blocks(self, hop_length: int, realtime: bool = False) -> Iterator[np.ndarray]:
        """Yield consecutive blocks of ``hop_length`` samples; the last one is zero-padded.
        With ``realtime``, each block is released no earlier than it would arrive live."""
        x = self.mono
        n_blocks = -(-len(x) // hop_length)
        start = time.monotonic()
        for k in range(n_blocks):
            block = x[k * hop_length:(k + 1) * hop_length]
            if len(block) < hop_length:
                block = np.concatenate([block, np.zeros(hop_length - len(block), np.float32)])
            if realtime:
                due = start + (k + 1) * hop_length / self.sample_rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield block
