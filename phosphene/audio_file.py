"""Reading audio files — whole into memory, or a block at a time — and the one sanitizer every
audio path uses.

soundfile (libsndfile) reads WAV/FLAC/OGG and friends; anything it cannot open (MP3, AAC, the
audio track of a video) goes through PyAV (FFmpeg). Used by the live side's ``FileSource``
(rendering, rehearsing from a recording), by offline analysis (``AudioFileStream``: a two-hour
file is never held whole) and by ``render.video`` (the audio track of a rendered video), so it
lives at the package root: no device, GL or runtime import.

Every sample that leaves this module has been through ``sanitize_audio``: finite and within
[-1, 1]. A file with NaN or inf in it (a broken export, a float WAV from a crashed plug-in)
then analyses as silence where it is broken and encodes into a video like any other.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError

STREAM_BLOCK_FRAMES = 1 << 16   # frames per read of AudioFileStream (~1.5 s at 44.1 kHz)


def sanitize_audio(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Float samples (1.0 = full scale, any shape) made safe to analyse or to play: NaN and
    ±inf become 0.0 (silence: a broken value carries no sound), everything else is clipped to
    [-1, 1]. Returns ``out`` (may be ``block`` itself, for in place), or a new array of
    ``block``'s float type when ``out`` is None.

    Runs per hop and per output block: with ``out`` given it allocates nothing unless the
    block carries NaN/inf (then a cleaned copy is made). The usual block costs two reductions
    (its min and max) and, unless in place, a copy."""
    if out is None:
        out = np.empty(np.shape(block), dtype=np.result_type(block, np.float32))
    if np.size(block) == 0:
        return out
    # min/max are NaN when any sample is (no warning, unlike a sum of +inf and -inf)
    lo, hi = np.minimum.reduce(block, axis=None), np.maximum.reduce(block, axis=None)
    if -1.0 <= lo and hi <= 1.0:
        if out is not block:
            np.copyto(out, block)
    elif math.isfinite(lo) and math.isfinite(hi):
        np.clip(block, -1.0, 1.0, out=out)
    else:
        np.clip(np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0, out=out)
    return out


@dataclass(frozen=True)
class AudioData:
    samples: np.ndarray  # (frames, channels) float32, 1.0 = full scale
    sample_rate: int
    path: Path

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def load_audio(path: str | Path) -> AudioData:
    """Read a whole audio file as float32 ``(frames, channels)``, sanitized
    (``sanitize_audio``); a clear error if we can't."""
    path = _existing_file(path)
    try:
        import soundfile as sf

        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as sf_error:  # noqa: BLE001 - libsndfile cannot read it: try FFmpeg
        with _PyAVDecoder(path, sf_error) as decoder:
            chunks = list(decoder.blocks())
        if not chunks:
            raise PhospheneError(f"audio file {str(path)!r} contains no samples") from None
        samples, rate = np.concatenate(chunks, axis=0), decoder.sample_rate
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise PhospheneError(f"audio file {str(path)!r} has no audio channels")
    if samples.shape[0] == 0:
        raise PhospheneError(f"audio file {str(path)!r} contains no samples")
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    sanitize_audio(samples, out=samples)
    return AudioData(samples, int(rate), path)


class AudioFileStream:
    """An audio file read ``block_frames`` frames at a time: memory stays the size of one
    block however long the file. The samples are the ones ``load_audio`` returns, in order.

        with AudioFileStream("set.flac") as stream:
            for hop in stream.mono_hops(256):      # exactly FileSource(...).blocks(256)
                ...

    Opening checks the file (a clear ``PhospheneError`` if it cannot be read); a file that
    turns out to hold no samples raises when read.
    """

    def __init__(self, path: str | Path, block_frames: int = STREAM_BLOCK_FRAMES):
        if block_frames < 1:
            raise ValueError(f"block_frames must be positive, got {block_frames}")
        self.path = _existing_file(path)
        self.block_frames = int(block_frames)
        self._sf = None
        self._decoder = None
        try:
            import soundfile as sf

            self._sf = sf.SoundFile(str(self.path))
        except Exception as sf_error:  # noqa: BLE001 - libsndfile cannot read it: try FFmpeg
            self._decoder = _PyAVDecoder(self.path, sf_error)
            self.sample_rate, self.channels = self._decoder.sample_rate, self._decoder.channels
        else:
            self.sample_rate, self.channels = int(self._sf.samplerate), int(self._sf.channels)
        if self.channels == 0:
            self.close()
            raise PhospheneError(f"audio file {str(self.path)!r} has no audio channels")
        self.frames_read = 0

    def blocks(self) -> Iterator[np.ndarray]:
        """Sanitized float32 ``(frames, channels)`` blocks of at most ``block_frames`` frames
        (views of a reused buffer for libsndfile files: consume each before the next)."""
        if self._sf is not None:
            buffer = np.empty((self.block_frames, self.channels), np.float32)
            while True:
                try:
                    block = self._sf.read(self.block_frames, dtype="float32",
                                          always_2d=True, out=buffer)
                except Exception as exc:  # noqa: BLE001 - a file broken part way through
                    raise PhospheneError(f"cannot read audio file {str(self.path)!r} after "
                                         f"{self.frames_read} frames: {exc}") from None
                if len(block) == 0:
                    break
                self.frames_read += len(block)
                yield sanitize_audio(block, out=block)
        else:
            for chunk in self._decoder.blocks():
                for start in range(0, len(chunk), self.block_frames):
                    block = chunk[start:start + self.block_frames]
                    self.frames_read += len(block)
                    yield sanitize_audio(block, out=block)
        if self.frames_read == 0:
            raise PhospheneError(f"audio file {str(self.path)!r} contains no samples")

    def mono_hops(self, hop_length: int, channel: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive float32 mono blocks of ``hop_length`` samples (the mean of all channels,
        or ``channel``); the last one is zero-padded. The same blocks ``FileSource.blocks``
        gives for the whole file loaded at once."""
        if channel is not None and not 0 <= channel < self.channels:
            raise PhospheneError(f"channel {channel} does not exist: the audio has "
                                 f"{self.channels} channel(s), numbered from 0")
        pending = np.zeros(0, np.float32)
        for block in self.blocks():
            mono = to_mono(block, channel)
            if len(pending):
                mono = np.concatenate([pending, mono])
            whole = len(mono) // hop_length * hop_length
            for start in range(0, whole, hop_length):
                yield mono[start:start + hop_length]
            pending = mono[whole:].copy()
        if len(pending):
            yield np.concatenate([pending, np.zeros(hop_length - len(pending), np.float32)])

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()
        if self._decoder is not None:
            self._decoder.close()

    def __enter__(self) -> "AudioFileStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PhospheneError(f"audio file {str(path)!r} does not exist or is not a file")
    return path


class _PyAVDecoder:
    """The first audio stream of a file FFmpeg can read, decoded to float32 ``(frames,
    channels)`` chunks in the codec's own frame sizes. Errors become one ``PhospheneError``
    that names both libraries' complaints."""

    def __init__(self, path: Path, sf_error: Exception):
        import av

        self.path, self._sf_error = path, sf_error
        self._container = None
        try:
            self._container = av.open(str(path))
            if not self._container.streams.audio:
                raise PhospheneError(f"{str(path)!r} has no audio stream")
            self._stream = stream = self._container.streams.audio[0]
            self.sample_rate = int(stream.codec_context.sample_rate or stream.rate)
            self.channels = stream.codec_context.layout.nb_channels
            # one float planar layout for every codec, channels kept apart
            self._resampler = av.AudioResampler(format="fltp",
                                                layout=stream.codec_context.layout,
                                                rate=self.sample_rate)
        except PhospheneError:
            self.close()
            raise
        except Exception as av_error:  # noqa: BLE001 - neither library can read it
            self.close()
            raise self._unreadable(av_error) from None

    def _unreadable(self, av_error: Exception) -> PhospheneError:
        return PhospheneError(f"cannot read audio file {str(self.path)!r}: not a format "
                              f"libsndfile ({self._sf_error}) or FFmpeg ({av_error}) "
                              "understands")

    def blocks(self) -> Iterator[np.ndarray]:
        try:
            for frame in self._container.decode(self._stream):
                for out in self._resampler.resample(frame):
                    yield np.ascontiguousarray(out.to_ndarray().T, dtype=np.float32)
            for out in self._resampler.resample(None):
                yield np.ascontiguousarray(out.to_ndarray().T, dtype=np.float32)
        except PhospheneError:
            raise
        except Exception as av_error:  # noqa: BLE001 - a broken file, found while decoding
            raise self._unreadable(av_error) from None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "_PyAVDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def to_mono(samples: np.ndarray, channel: int | None = None) -> np.ndarray:
    """``(frames, channels)`` -> ``(frames,)``: the mean of all channels, or one channel."""
    if channel is None:
        return samples.mean(axis=1, dtype=np.float32)
    if not 0 <= channel < samples.shape[1]:
        raise PhospheneError(f"channel {channel} does not exist: the audio has "
                             f"{samples.shape[1]} channel(s), numbered from 0")
    return np.ascontiguousarray(samples[:, channel])
