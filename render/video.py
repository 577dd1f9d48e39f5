"""MP4 files (H.264 yuv420p + AAC) from rendered frames and an audio track, through PyAV.

    with VideoWriter("show.mp4", 1920, 1080, fps=30, audio=(samples, 44100)) as video:
        for pixels in frames:                     # (H, W, 3) or (H, W, 4) uint8, top row first
            video.write(pixels)

Sync and length: frame k is shown at k / fps seconds and audio sample n plays at n / sr; the
audio is interleaved with the video as frames arrive and, on close, cut or padded with silence
to exactly the video's duration, so both tracks end together (AAC's own 1024-sample framing and
priming are handled by the MP4 edit list). The file is written under a temporary name and
renamed on a successful close, so an interrupted render never leaves a truncated file behind
under the final name.

Colour: frames are sRGB; they are converted to limited-range BT.709 YUV and tagged as such,
which is what players assume for HD video.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import numpy as np

from phosphene.audio_file import load_audio, sanitize_audio, to_mono
from phosphene.errors import PhospheneError

AUDIO_BLOCK = 1024  # AAC frame size in samples

AudioSource = Union[None, str, os.PathLike, tuple]


def _fps_fraction(fps: float | Fraction) -> Fraction:
    fps = Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001
    if fps <= 0:
        raise PhospheneError(f"video fps must be positive, got {fps}")
    return fps


def _audio_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """An audio file as float32 ``(channels, samples)``, read by the same loader the analyzer's
    file source uses (libsndfile, FFmpeg for the rest); more than two channels are mixed down
    to mono."""
    audio = load_audio(path)
    samples = audio.samples if audio.samples.shape[1] <= 2 else to_mono(audio.samples)[:, None]
    return np.ascontiguousarray(samples.T), audio.sample_rate


def _planar_audio(samples: Any, sr: int) -> np.ndarray:
    """(n,), (n, ch) or (ch, n) float/int samples -> float32 (ch, n) in [-1, 1]."""
    a = np.asarray(samples)
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 1:
        a = a[None, :]
    elif a.ndim == 2 and a.shape[0] > a.shape[1]:
        a = a.T  # (n, ch) as soundfile and librosa-with-mono=False give it
    if a.ndim != 2 or a.shape[0] not in (1, 2):
        raise PhospheneError(f"audio must be mono or stereo samples, got shape {np.shape(samples)}")
    if not (8000 <= int(sr) <= 96000):
        raise PhospheneError(f"audio sample rate {sr} Hz is outside 8000..96000")
    return np.ascontiguousarray(a)


class VideoWriter:
    """Writes an H.264/AAC MP4. ``audio`` is None, a file path, or ``(samples, sample_rate)``."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float | Fraction,
                 audio: AudioSource = None, crf: int = 18, preset: str = "medium",
                 audio_bitrate: int = 192_000) -> None:
        import av

        if width % 2 or height % 2 or width < 2 or height < 2:
            raise PhospheneError(f"video size {width}x{height}: H.264 in yuv420p needs an even "
                                 "width and height")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = _fps_fraction(fps)
        self.frames_written = 0

        self._audio: np.ndarray | None = None
        self._sr = 0
        if audio is not None:
            if isinstance(audio, tuple):
                samples, sr = audio
                self._audio, self._sr = _planar_audio(samples, int(sr)), int(sr)
            else:
                self._audio, self._sr = _audio_file(audio)
        self._audio_done = 0  # samples already sent to the encoder

        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        if self.path.is_dir():
            raise PhospheneError(f"cannot write video {self.path}: it is a directory")
        try:
            # FFmpeg opens the file only when the first packet is written -- with the encoder's
            # lookahead, late in a render: create it now, so a bad path fails before any work
            self._tmp.open("wb").close()
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
        except (OSError, av.FFmpegError) as exc:
            self._remove_tmp()
            raise PhospheneError(f"cannot write video {self.path}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
        vs = self._container.add_stream("libx264", rate=self.fps)
        vs.width, vs.height, vs.pix_fmt = self.width, self.height, "yuv420p"
        vs.options = {"crf": str(crf), "preset": preset}
        cc = vs.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc = 1, 1, 1  # BT.709
        cc.color_range = 1  # limited ("MPEG") range
        vs.time_base = Fraction(1, 1) / self.fps
        self._video = vs
        self._astream = None
        if self._audio is not None:
            layout = "mono" if self._audio.shape[0] == 1 else "stereo"
            ast = self._container.add_stream("aac", rate=self._sr, layout=layout)
            ast.bit_rate = audio_bitrate
            ast.time_base = Fraction(1, self._sr)
            self._astream = ast
            self._layout = layout
        self._closed = False

    # -- video --------------------------------------------------------------------------------

    def write(self, frame: np.ndarray) -> None:
        """Append one (height, width, 3 or 4) uint8 sRGB frame, top row first."""
        import av

        if self._closed:
            raise PhospheneError(f"{self.path}: write() after close()")
        if frame.dtype != np.uint8 or frame.shape[:2] != (self.height, self.width) or \
                frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise PhospheneError(f"video frame must be ({self.height}, {self.width}, 3) uint8, "
                                 f"got {frame.shape} {frame.dtype}")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                        format="rgb24" if frame.shape[2] == 3 else "rgba")
        vf = vf.reformat(format="yuv420p", src_colorspace="itu709", dst_colorspace="itu709",
                         dst_color_range="MPEG")
        vf.pts = self.frames_written
        self._mux(self._video.encode(vf))
        self.frames_written += 1
        self._write_audio_until(self._samples_at(self.frames_written), final=False)

    # -- audio --------------------------------------------------------------------------------

    def _samples_at(self, n_frames: int) -> int:
        return round(Fraction(n_frames) / self.fps * self._sr)

    def _write_audio_until(self, end: int, final: bool) -> None:
        """Encode audio up to sample ``end`` (whole AAC blocks; the remainder too if final)."""
        import av

        if self._astream is None:
            return
        while self._audio_done < end:
            n = min(AUDIO_BLOCK, end - self._audio_done)
            if n < AUDIO_BLOCK and not final:
                break
            start = self._audio_done
            # a contiguous copy, finite and within full scale: one NaN or inf would make the
            # AAC encoder refuse the frame (EINVAL) and end the render
            block = sanitize_audio(self._audio[:, start:start + n])
            if block.shape[1] < n:  # the audio ran out before the video: silence
                block = np.pad(block, ((0, 0), (0, n - block.shape[1])))
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout=self._layout)
            af.sample_rate = self._sr
            af.pts = start
            af.time_base = Fraction(1, self._sr)
            self._mux(self._astream.encode(af))
            self._audio_done += n

    def _mux(self, packets: Any) -> None:
        try:
            for packet in packets:
                self._container.mux(packet)
        except OSError as exc:   # the disk filled up, the folder went away: say which file
            raise PhospheneError(f"cannot write video {self.path}: {exc.strerror or exc}") \
                from None

    # -- end ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the encoders, trim/pad the audio to the video's length, move the file into
        place."""
        if self._closed:
            return
        self._closed = True
        try:
            self._mux(self._video.encode(None))
            if self._astream is not None:
                self._write_audio_until(self._samples_at(self.frames_written), final=True)
                self._mux(self._astream.encode(None))
            self._container.close()
        except BaseException:
            self.abort()
            raise
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            # the video is complete: keep it under its temporary name rather than lose it
            raise PhospheneError(f"cannot put the video in place as {self.path} "
                                 f"({exc.strerror or exc}); it is kept as {self._tmp}") from None

    def abort(self) -> None:
        """Stop without producing a file (e.g. after an error or Ctrl-C)."""
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the partial file is deleted either way
            pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:   # e.g. its folder is not writable (nothing was made there then)
            pass

    @property
    def duration_s(self) -> float:
        return float(self.frames_written / self.fps)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
