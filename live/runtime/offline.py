"""Offline render: an audio file (or a recorded set) -> an H.264 MP4 with the audio, frame-exact
with what ``live`` shows for the same input.

The pipeline is live's, fed from a file:

    audio hops -> Session (analyzer -> show; recorded events replayed)   one step per hop
                                      | state at each video frame's sample index
                                      v
    FrameGenerator (batched) -> ChainDriver (EGL, one draw per video frame) -> VideoWriter

Video frame ``k`` shows time ``start + k / fps``, i.e. sample ``s_k = round(t_k * sr)``. Its
state is the show's state after the last hop that ends at or before ``s_k`` — what the live
engine would have had on screen at that moment. The analyzer and the show always run from the
file's first sample, so ``--start`` changes which frames are written, never what they look like.

Effects that keep history (feedback) step once per video frame, as on a display. The
``crossfade`` effect (which hides a slow generator live) is held at its newest frame: offline
every video frame gets its own generator frame.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from phosphene.audio_file import load_audio, to_mono
from phosphene.errors import PhospheneError
from phosphene.live.runtime.live_compile import compile_decision
from phosphene.live.runtime.session import (Session, ShowSource, analyzer_settings,
                                            open_generator)
from phosphene.live.show.events import ControlEvent, EventSchedule
from phosphene.live.show.show import ShowState
from phosphene.models.stylegan2.fast import compile_for_live
from phosphene.render.context import create_headless_context
from phosphene.render.driver import ChainDriver
from phosphene.render.effects import resolve_effect
from phosphene.render.readback import AsyncReadback
from phosphene.render.video import VideoWriter

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
PREVIEW_SIDE = 320          # --preview: the long side of the output, in pixels
STILL_WARMUP_S = 1.0        # a still with trails renders this much before it (fills history)


def compile_offline(generator: Any, batch: int) -> dict[str, Any]:
    """On CUDA, the render's batch size captured as a CUDA graph (``compile_for_live``; a
    last, shorter batch runs eager). Not on the CPU by default: a compile costs a minute there
    and gains ~1.2-1.4x, which a short render never earns back (``PHOSPHENE_COMPILE=on``
    asks for it). Synchronous: a render can wait; it logs what it chose."""
    compile_it, why = compile_decision(None, "auto", generator.device.type,
                                       auto_on_cpu=False)
    if not compile_it:
        return {"compiled": False, "reason": why}
    log.info("compiling the synthesis for batches of %d (%s) ...", batch, why)
    live = compile_for_live(generator.G, batch_size=batch, force_fp32=generator.force_fp32)
    if live.compiled:
        generator.synthesis = live
    log.info("offline synthesis: %s", live.reason)
    return {"compiled": live.compiled, "reason": live.reason, "why": why}


# -- what to render --------------------------------------------------------------------------
@dataclass
class RenderSettings:
    size: tuple[int, int] | None = None      # None: the preset's output size
    fps: float = DEFAULT_FPS
    start_s: float = 0.0
    duration_s: float | None = None          # None: to the end of the audio
    batch: int = 4
    device: str = "auto"
    model: str | None = None                 # None: the preset's (or recording's) model
    preview: bool = False
    fit: str = "letterbox"
    crf: int = 18
    x264_preset: str = "medium"
    progress: bool = True


# -- timing ----------------------------------------------------------------------------------
def frame_sample_index(k: int, start_sample: int, fps: Fraction, sample_rate: int) -> int:
    """The audio sample video frame ``k`` shows (the same rounding VideoWriter uses for audio)."""
    return start_sample + round(Fraction(k) / fps * sample_rate)


def frame_count(duration_s: float, fps: Fraction) -> int:
    return max(int(math.ceil(duration_s * fps - 1e-6)), 1)


class ShowTimeline:
    """Runs a session over an audio signal hop by hop (recorded events replayed by the event
    rule) and answers "the state at sample s" for increasing ``s``."""

    def __init__(self, mono: np.ndarray, session: Session, events: Sequence[ControlEvent] = ()):
        self.session = session
        self.schedule = EventSchedule(events)
        self._mono = mono
        self._hop = session.hop_length
        self._pos = 0          # samples consumed
        self.hops = 0

    @property
    def show(self):
        return self.session.show

    def _next_hop(self) -> None:
        block = self._mono[self._pos:self._pos + self._hop]
        if len(block) < self._hop:      # past the end: zero padding, as FileSource does
            block = np.concatenate([block, np.zeros(self._hop - len(block), np.float32)])
        self._pos += self._hop
        self.session.step(block, self.schedule.due(self._pos))
        self.hops += 1

    def state_at(self, sample_index: int) -> ShowState:
        """The state after the last hop ending at or before ``sample_index``."""
        while self._pos + self._hop <= sample_index:
            self._next_hop()
        return self.session.show.state()


# -- pixels ----------------------------------------------------------------------------------
class EffectStage:
    """The preset's effect chain on a headless context, drawn by the one chain driver (as
    live: an effect switched on or off is switched in the running chain, the chain is rebuilt
    only when a preset switch changes the list of effects), with asynchronous readback. Both
    follow the state alone, so a render is the same every time. The ``crossfade`` effect
    (which hides a slow generator live) is held at its newest frame: offline every video frame
    gets its own generator frame."""

    def __init__(self, width: int, height: int, fit: str, sample_rate: int = 48000):
        self.size = (width, height)
        self.ctx = create_headless_context()
        self.driver = ChainDriver(self.ctx, self.size, sample_rate, fit=fit,
                                  crossfade_first=False)
        self.readback = AsyncReadback(self.ctx, width, height, 3)

    def render(self, frame: Any, state: ShowState, time_s: float) -> np.ndarray | None:
        """Draw ``frame`` under ``state``; returns an earlier frame's pixels once the
        readback ring is full (a reused buffer: consume before the next call)."""
        canvas = self.driver.draw(state, frame, position=1.0, time_s=time_s)
        return self.readback.submit(canvas)

    def drain(self) -> list[np.ndarray]:
        return self.readback.drain()

    def close(self) -> None:
        self.readback.release()
        self.driver.release()
        self.ctx.release()


@dataclass
class RenderResult:
    frames: int
    duration_s: float
    interrupted: bool = False
    output: Path | None = None


class OfflineRender:
    """Everything one render needs, built once: audio, analyzer, show, generator, effects."""

    def __init__(self, audio_path: str | Path, source: ShowSource, settings: RenderSettings, *,
                 generator: Any = None):
        """``generator``: an already loaded model to use instead of loading
        ``source.model_source`` (tests and benchmarks share one)."""
        self.settings = settings
        self.source = source
        self.fps = Fraction(settings.fps).limit_denominator(1001)
        if self.fps <= 0 or settings.fps > 240:
            raise PhospheneError(f"--fps {settings.fps}: must be in (0, 240]")
        if settings.batch < 1:
            raise PhospheneError(f"--batch {settings.batch}: must be at least 1")

        self.audio = load_audio(audio_path)
        self.sample_rate = sr = self.audio.sample_rate
        self.mono = to_mono(self.audio.samples)
        total_s = len(self.mono) / sr
        if not 0.0 <= settings.start_s < total_s:
            raise PhospheneError(f"--start {settings.start_s:g} s is outside the audio "
                                 f"(0..{total_s:.3f} s)")
        self.start_sample = round(settings.start_s * sr)
        remaining = (len(self.mono) - self.start_sample) / sr
        if settings.duration_s is not None and settings.duration_s <= 0:
            raise PhospheneError(f"--duration {settings.duration_s:g}: must be positive")
        self.duration_s = min(settings.duration_s or remaining, remaining)
        self.n_frames = frame_count(self.duration_s, self.fps)

        w, h = settings.size or (source.preset.output.width, source.preset.output.height)
        if settings.preview:
            scale = PREVIEW_SIDE / max(w, h)
            w, h = max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
        if w % 2 or h % 2:
            raise PhospheneError(f"--size {w}x{h}: H.264 needs an even width and height")
        self.size = (w, h)

        settings_checked = analyzer_settings(source)
        self.generator, _ = open_generator(source.model_source, settings.device,
                                           generator=generator, max_batch=settings.batch,
                                           deterministic=True)
        self.device = self.generator.device
        self.synthesis_info = compile_offline(self.generator, settings.batch)
        self.session = Session(source, sr, self.generator, settings=settings_checked)
        self.timeline = ShowTimeline(self.mono, self.session, source.events)

    @property
    def show(self):
        return self.session.show

    # -- the frame loop ------------------------------------------------------------------------
    def frame_time_s(self, k: int) -> float:
        return float(frame_sample_index(k, self.start_sample, self.fps, self.sample_rate)
                     / self.sample_rate)

    def states(self, first: int, count: int) -> Iterator[tuple[int, Any]]:
        for k in range(first, first + count):
            s = frame_sample_index(k, self.start_sample, self.fps, self.sample_rate)
            yield k, self.timeline.state_at(s)

    def frames(self, first: int = 0, count: int | None = None,
               on_frame=None) -> Iterator[np.ndarray]:
        """Pixels ``(H, W, 3)`` uint8 of video frames ``first ..`` in order (views of reused
        buffers: consume each before asking for the next)."""
        count = self.n_frames - first if count is None else count
        stage = EffectStage(*self.size, self.settings.fit, self.sample_rate)
        try:
            batch: list[tuple[int, Any]] = []
            for k, state in self.states(first, count):
                batch.append((k, state))
                if len(batch) == self.settings.batch:
                    yield from self._render_batch(stage, batch)
                    batch = []
            if batch:
                yield from self._render_batch(stage, batch)
            yield from stage.drain()
        finally:
            stage.close()

    def _render_batch(self, stage: EffectStage, batch: list) -> Iterator[np.ndarray]:
        images = self.generator.generate([state.request for _, state in batch])
        for i, (k, state) in enumerate(batch):
            out = stage.render(images[i:i + 1], state, self.frame_time_s(k))
            if out is not None:
                yield out

    def audio_segment(self, n_frames: int) -> tuple[np.ndarray, int]:
        """The source audio under ``n_frames`` video frames, (samples, channels)."""
        n = round(Fraction(n_frames) / self.fps * self.sample_rate)
        samples = self.audio.samples
        if samples.shape[1] > 2:          # AAC here is mono or stereo: mix down
            samples = self.mono[:, None]
        return samples[self.start_sample:self.start_sample + n], self.sample_rate


# -- the commands' work ----------------------------------------------------------------------
def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=desc, disable=not enabled, dynamic_ncols=True,
                smoothing=0.1, file=sys.stderr)


def _save_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.partial.png")
    Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")
    tmp.replace(path)


def check_writable(path: str | Path, directory: bool = False) -> None:
    """Fail now, with one line naming ``path``, if a render could not write its result there
    (``directory``: files inside the folder ``path``) -- rather than after the whole render.
    Creates missing parent folders, as the render would; leaves nothing else behind. Tried for
    real (a probe file), since permission bits do not tell for root, read-only mounts or
    immutable folders."""
    path = Path(path)
    folder = path if directory else path.parent
    if not directory and path.is_dir():
        raise PhospheneError(f"cannot write {path}: it is a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PhospheneError(f"cannot write {path}: {folder} is not a directory") from None
    except OSError as exc:
        raise PhospheneError(f"cannot write {path}: cannot create {folder}: "
                             f"{exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".phosphene-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PhospheneError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not directory and path.exists():
        # the result replaces the file at the end; in a sticky folder (/tmp) only its owner
        # (or the folder's) may do that
        here, there = folder.stat(), path.stat()
        if here.st_mode & stat.S_ISVTX and os.geteuid() not in (0, here.st_uid, there.st_uid):
            raise PhospheneError(f"cannot write {path}: it belongs to another user in a "
                                 "sticky folder")


def render_video(job: OfflineRender, output: Path | None, frames_dir: Path | None, *,
                 frames: Iterable[np.ndarray] | None = None, desc: str = "render") -> RenderResult:
    """Write the MP4 (and/or the PNG sequence). Ctrl-C stops cleanly: the frames done so far
    become a playable, shorter file with the audio cut to match. ``frames``: the pixels to
    write instead of ``job.frames()`` (a render on a cluster hands in its workers' chunks)."""
    for path, is_dir in ((output, False), (frames_dir, True)):
        if path is not None:
            check_writable(path, directory=is_dir)
    writer = None
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        writer = VideoWriter(output, *job.size, fps=job.fps,
                             audio=job.audio_segment(job.n_frames),
                             crf=job.settings.crf,
                             preset="ultrafast" if job.settings.preview else job.settings.x264_preset)
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)
    done = 0
    interrupted = False
    bar = _progress(job.n_frames, job.settings.progress, desc)
    source = job.frames() if frames is None else frames
    try:
        for pixels in source:
            if writer is not None:
                writer.write(pixels)
            if frames_dir is not None:
                _save_png(frames_dir / f"frame_{done:06d}.png", pixels)
            done += 1
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        # a second Ctrl-C must not cut the clean-up short (signals: the main thread only)
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            # the frames' generator (its effect stage: a GL context, a readback) is closed
            # here, not whenever the interpreter collects it: releasing an EGL context during
            # interpreter shutdown can hang the process after a Ctrl-C
            close = getattr(source, "close", None)
            if close is not None:
                close()
            if writer is not None:
                # close() (not abort()) even when interrupted: a partial render is a video
                writer.close()
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
    return RenderResult(done, done / float(job.fps), interrupted, output)


def render_still(job: OfflineRender, time_s: float, output: Path) -> np.ndarray:
    """The frame at ``time_s`` (absolute, in the audio) as a PNG. With a trail effect in the
    chain, the second before it is rendered too, so the trails look as they do in the video."""
    sr = job.sample_rate
    target = round(time_s * sr)
    if not 0 <= target <= len(job.mono):
        raise PhospheneError(f"--still {time_s:g} s is outside the audio "
                             f"(0..{len(job.mono) / sr:.3f} s)")
    check_writable(output)
    has_history = any(resolve_effect(e.name).uses_history for e in job.source.preset.effects)
    warmup = int(round(STILL_WARMUP_S * float(job.fps))) if has_history else 0
    # frames are counted from the still's time backwards: the last one is exactly time_s
    job.start_sample = target
    first = -min(warmup, int(target / sr * float(job.fps)))
    last = None
    for pixels in job.frames(first=first, count=-first + 1):
        last = pixels
    if last is None:
        raise PhospheneError("the still produced no frame")
    output.parent.mkdir(parents=True, exist_ok=True)
    _save_png(output, last)
    return np.array(last)
