"""The display loop: at the display rate, the current show state and the newest generator frames
through the effect chain (``render.driver.ChainDriver``), to a window or an EGL surface.

The loop talks to the show through a *feed* and to nothing else, so the same loop runs

- in its own process (the default, ``display_process.py``): the feed there asks the engine's
  process for the newest state and frame over a pipe and shared memory. OpenGL calls (moderngl)
  hold the interpreter lock while they wait for the driver, so a display in the engine's
  process stalls the audio callback, the analysis and the generator for as long as a frame
  takes to draw (see the README, "Architecture");
- on a thread of the engine's process (``EngineFeed``, ``phosphene live --display thread``):
  no copies between processes, for a GPU machine where the chain costs little.

A window is paced by vsync (with a cap where the swap does not wait); headless, by the
preset's fps or ``--fps``. With ``--record``, the feed writes one short line per presented
frame saying which state and which generator frames it drew (``frames.jsonl``), so a replay
draws the same pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.runtime.governor import DisplayGovernor
from phosphene.live.runtime.overlay_info import OverlayFeed
from phosphene.render.context import create_headless_context
from phosphene.render.driver import ChainDriver
from phosphene.render.outputs import VideoOutputs, VideoOutputSpec
from phosphene.render.window import Window  # glfw itself is imported when a window opens

log = logging.getLogger(__name__)

# How long the first picture may wait for the generator, so the show never opens black.
FIRST_FRAME_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PresentedFrame:
    """What the ``on_frame`` hook receives after each display frame (tests, benchmarks)."""

    index: int
    presented_at: float                       # time.monotonic()
    state: Any                                # the ShowState drawn
    generator_sample: int | None              # request sample index of the generator frame
    pixels: np.ndarray | None                 # (H, W, 3) uint8 when the hook asked for pixels


@dataclass(frozen=True)
class DisplaySetup:
    """What the display needs to open (picklable: it travels to the display process)."""

    size: tuple[int, int]                     # the canvas
    period_s: float                           # 1 / the display rate (headless pacing)
    sample_rate: int
    headless: bool = True
    title: str = "phosphene"
    monitor: int | None = None
    fullscreen: bool = False
    overlay: bool = False
    fit: str = "letterbox"
    capture_pixels: bool = False              # send each frame's pixels to ``on_frame``
    recording: bool = False                   # the feed records what each frame drew
    # video outputs of the final picture (NDI, v4l2loopback, Syphon, Spout); none by default
    outputs: VideoOutputSpec = field(default_factory=VideoOutputSpec)


@dataclass(frozen=True)
class DisplayState:
    """The part of a ``ShowState`` the display draws from (``ChainDriver`` reads these), plus
    ``key``: how the feed finds the whole state again (the state itself on a thread, a number
    in the display process)."""

    sample_index: int
    request_sample: int                       # the sample index of the latent request
    effect_names: tuple[str, ...]
    effect_refs: tuple[str, ...]
    effect_params: dict[str, float]
    effects_enabled: dict[str, bool]
    key: Any = None

    @classmethod
    def of(cls, state: Any, key: Any) -> "DisplayState":
        return cls(state.sample_index, state.request.sample_index, tuple(state.effect_names),
                   tuple(state.effect_refs), dict(state.effect_params),
                   dict(state.effects_enabled), key)


@dataclass(frozen=True)
class FrameToShow:
    """The newest generator frame: an image the chain can upload, its number and request."""

    image: Any                                # NCHW float in [-1, 1] or HWC uint8
    seq: int
    sample_index: int


@dataclass
class FrameDrawn:
    """What one display frame drew, for the feed (recording, latency, ``on_frame``)."""

    index: int
    started_at: float
    presented_at: float
    state: DisplayState
    frame_sample: int | None
    previous_sample: int | None
    frame_id: int
    crossfade_position: float | None
    canvas: tuple[int, int] | None            # the size drawn, where the budget shrank it
    behind: bool                              # the budget's verdict: the generator lags
    pixels: np.ndarray | None = None


@dataclass
class DisplayOutcome:
    """How the display ended and how it showed the picture (the report's ``display``)."""

    reason: str = "stopped"                   # "stopped", "closed", "audio ended"
    info: dict[str, Any] = field(default_factory=dict)


# Performer keys (f, Esc/q, o are the window's own): glfw key name -> address
KEY_ADDRESSES = {"KEY_SPACE": "/phosphene/keyframe/next",
                 "KEY_BACKSPACE": "/phosphene/keyframe/prev",
                 "KEY_C": "/phosphene/keyframe/capture",
                 "KEY_S": "/phosphene/keyframe/save",
                 "KEY_T": "/phosphene/tempo/tap",
                 "KEY_RIGHT": "/phosphene/preset/next",
                 "KEY_LEFT": "/phosphene/preset/prev",
                 # performer safety: without an argument, blackout and freeze toggle
                 "KEY_B": "/phosphene/blackout",
                 "KEY_P": "/phosphene/panic",
                 "KEY_Z": "/phosphene/freeze"}


def pace_period(window, period: float) -> float:
    """Least seconds between display frames. Headless: ``period`` (the preset's rate or
    --fps). A window is paced by vsync; its cap, a little above the monitor's refresh, only
    acts where the swap does not wait (Xvfb, a VM, vsync off in the driver), so the loop
    never spins flat out."""
    if window is not None and window.refresh_hz:
        return 1.0 / (1.1 * window.refresh_hz)
    return period


def run_display(feed) -> DisplayOutcome:
    """Draw what ``feed`` serves until it says stop or the window closes.

    The feed (``EngineFeed`` here, ``display_process.RemoteFeed`` in the display process):
    ``setup``; ``opened(ctx)``; ``running()``; ``wait_first_frame(timeout)``; ``current()`` ->
    (DisplayState, FrameToShow or None, frames generated so far); ``overlay(window, now)``;
    ``post_key``; ``drawn(FrameDrawn)``; ``display_error(message)``; ``wait(seconds)``.
    """
    setup: DisplaySetup = feed.setup
    size = tuple(setup.size)
    window = None
    outcome = DisplayOutcome()
    if setup.headless:
        ctx = create_headless_context()
    else:
        window = Window(size, title=setup.title, monitor=setup.monitor,
                        fullscreen=setup.fullscreen, overlay=setup.overlay, fit=setup.fit)
        ctx = window.ctx
        for key, address in KEY_ADDRESSES.items():
            window.on_key(getattr(window.glfw, key), lambda a=address: feed.post_key(a))
    feed.opened(ctx)
    driver = ChainDriver(ctx, size, setup.sample_rate)
    outputs = None
    if setup.outputs.any:
        try:
            outputs = VideoOutputs(ctx, setup.outputs, size, 1.0 / setup.period_s)
        except BaseException:
            driver.release()
            if window is not None:
                window.close()
            else:
                ctx.release()
            raise
    pace_s = pace_period(window, setup.period_s)
    # the display's budget: when the generator falls behind, draw less often, then smaller
    governor = DisplayGovernor(pace_s)
    outcome.info = {"mode": "headless" if window is None else "window",
                    "canvas": list(size), "rate_cap_hz": 1.0 / pace_s,
                    "renderer": ctx.info.get("GL_RENDERER", "")}
    index = 0
    try:
        feed.wait_first_frame(FIRST_FRAME_TIMEOUT_S)
        next_due = time.monotonic()
        while True:
            if window is not None and not window.poll():
                outcome.reason = "closed"
                break
            running = feed.running()
            if running is not True:
                outcome.reason = running or "stopped"
                break
            state, generated, generated_count = feed.current()
            now = time.monotonic()
            driver.reload_if_changed()
            try:
                if generated is None:
                    canvas = driver.draw(state, now=now)
                else:
                    canvas = driver.draw(state, generated.image, frame_id=generated.seq,
                                         frame_sample=generated.sample_index, now=now)
            except PhospheneError as exc:
                feed.display_error(str(exc))
                feed.wait(setup.period_s)
                continue
            if window is not None:
                feed.overlay(window, now)
                window.present(canvas)
            else:
                ctx.finish()          # the frame is really drawn, as a swap would wait
            presented = time.monotonic()
            if outputs is not None:   # starts a readback; hands the previous frame to senders
                outputs.frame(canvas, index)
            # how far the GAN frame on screen lags the one the show asks for (not the clock: a
            # frozen show holds an old request, and that is not the generator falling behind)
            gan_age_s = None if driver.frame_sample is None else \
                (state.request_sample - driver.frame_sample) / setup.sample_rate
            frame_period = governor.after_frame(presented, presented - now, gan_age_s,
                                                generated_count)
            feed.drawn(FrameDrawn(
                index, now, presented, state, driver.frame_sample, driver.previous_sample,
                driver.frame_id or 0, driver.crossfade_position,
                None if driver.size == size else tuple(driver.size), governor.behind,
                driver.read().copy() if setup.capture_pixels else None))
            index += 1
            wanted = governor.scaled(size)
            if wanted != driver.size:                    # drawn smaller (or back up)
                driver.resize(wanted)
            # pace to the display rate (headless; a window whose swap does not wait)
            next_due = max(next_due + frame_period, presented - frame_period)
            delay = next_due - time.monotonic()
            if delay > 0:
                feed.wait(delay)
    finally:
        outcome.info["budget"] = governor.summary()
        if outputs is not None:
            outcome.info["outputs"] = outputs.close()
        driver.release()
        if window is not None:
            outcome.info.update(window=list(window.framebuffer_size),
                                fullscreen=window.fullscreen, fit=window.fit,
                                overlay=window.overlay_visible, refresh_hz=window.refresh_hz)
            window.close()
        else:
            ctx.release()
    return outcome


def display_setup(engine, *, capture_pixels: bool = False) -> DisplaySetup:
    """The engine's options as a ``DisplaySetup``."""
    o = engine.options
    preset = engine.actions.preset
    return DisplaySetup(size=tuple(o.size or (preset.output.width, preset.output.height)),
                        period_s=1.0 / (o.fps or preset.output.fps),
                        sample_rate=int(engine.sample_rate), headless=o.headless,
                        title=f"phosphene — {preset.name}", monitor=o.monitor,
                        fullscreen=o.fullscreen, overlay=o.overlay, fit=o.fit,
                        capture_pixels=capture_pixels, recording=engine.recorder is not None,
                        outputs=video_outputs(o, preset))


def video_outputs(options, preset) -> VideoOutputSpec:
    """The video outputs asked for: the command line's, else the preset's ``ndi`` (the preset
    the show starts with)."""
    preset_ndi = getattr(preset, "ndi", None)
    return VideoOutputSpec(
        ndi_name=getattr(options, "ndi", None) or (preset_ndi.name if preset_ndi else None),
        v4l2_device=getattr(options, "v4l2", None), syphon_name=getattr(options, "syphon", None),
        spout_name=getattr(options, "spout", None))


class EngineSide:
    """What the engine's process does with each frame the display drew, wherever the display
    runs: the frame times and onset latency for the report, the recording's frame line, the
    ``on_frame`` hook, the first-frame signal."""

    def __init__(self, engine, setup: DisplaySetup,
                 on_frame: Callable[[PresentedFrame], None] | None):
        self.engine = engine
        self.setup = setup
        self.on_frame = on_frame
        self.behind = False          # the display budget's verdict (the overlay reads it)
        self.overlay = OverlayFeed(engine)
        if engine.recorder is not None:
            engine.recorder.start_frames(setup.size[0], setup.size[1], 1.0 / setup.period_s)

    def drawn(self, frame: FrameDrawn, state: Any) -> None:
        """``state``: the whole ShowState ``frame.state`` was made from."""
        e = self.engine
        s = frame.state
        if e.recorder is not None:        # what a replay needs to draw this frame again
            e.recorder.write_frame(frame.index, s.sample_index, frame.frame_sample,
                                   frame.previous_sample, frame.frame_id,
                                   frame.crossfade_position, canvas=frame.canvas)
        e.frame_times.add(frame.presented_at)
        e.latency.presented(frame.presented_at, s.sample_index, frame.frame_sample)
        e.render_latency.presented(frame.presented_at, frame.frame_sample)
        self.behind = frame.behind
        if self.on_frame is not None:
            self.on_frame(PresentedFrame(frame.index, frame.presented_at, state,
                                         frame.frame_sample, frame.pixels))
        e.ready.set()

    def display_error(self, message: str) -> None:
        if self.engine.errors.add("display", message):    # log a repeat once
            log.error("frame not drawn: %s", message)

    def running(self) -> bool | str:
        """True while the show goes on; else why it ends ("audio ended", "stopped")."""
        if self.engine.stopping:
            return "stopped"
        if self.engine.analysis_done:
            return "audio ended"
        return True


class EngineFeed:
    """The display on a thread of the engine's process: reads the engine directly."""

    def __init__(self, engine, *, on_frame=None, capture_pixels: bool = False):
        self.engine = engine
        self.setup = display_setup(engine, capture_pixels=capture_pixels)
        self.side = EngineSide(engine, self.setup, on_frame)
        engine.governor = self.side           # the overlay reads ``behind`` from it

    def opened(self, ctx) -> None:
        self.engine.start_show()

    def running(self) -> bool | str:
        return self.side.running()

    def wait_first_frame(self, timeout: float) -> None:
        self.engine.worker.wait_for_frame(timeout=timeout)

    def current(self) -> tuple[DisplayState, FrameToShow | None, int]:
        state = self.engine.state
        worker = self.engine.worker
        latest = worker.latest()
        frame = None if latest is None else FrameToShow(latest.image, latest.seq,
                                                        latest.request.sample_index)
        return DisplayState.of(state, state), frame, worker.generated

    def overlay(self, window, now: float) -> None:
        self.side.overlay.frame(window, now)

    def post_key(self, address: str) -> None:
        self.engine.post(address, origin="key")

    def drawn(self, frame: FrameDrawn) -> None:
        self.side.drawn(frame, frame.state.key)

    def display_error(self, message: str) -> None:
        self.side.display_error(message)

    def wait(self, seconds: float) -> None:
        self.engine.wait_stop(seconds)
