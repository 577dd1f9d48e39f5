"""The display loop: at the display rate, the current show state and the newest generator frames
through the effect chain (``render.driver.ChainDriver``), to a window or an EGL surface.

Runs on the thread that owns the OpenGL context (the main thread for a window). A window is
paced by vsync (with a cap where the swap does not wait); headless, by the preset's fps or
``--fps``. With ``--record``, one short line per presented frame says which state and which
generator frames it drew (``frames.jsonl``), so a replay draws the same pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.runtime.overlay_info import OverlayFeed
from phosphene.render.context import create_headless_context
from phosphene.live.runtime.governor import DisplayGovernor
from phosphene.render.driver import ChainDriver
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


# Performer keys (f, Esc/q, o are the window's own): glfw key name -> address
KEY_ADDRESSES = {"KEY_SPACE": "/phosphene/keyframe/next",
                 "KEY_BACKSPACE": "/phosphene/keyframe/prev",
                 "KEY_C": "/phosphene/keyframe/capture",
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
    never spins flat out and starves the analysis and generator threads."""
    if window is not None and window.refresh_hz:
        return 1.0 / (1.1 * window.refresh_hz)
    return period


def run_display(engine, *, on_frame: Callable[[PresentedFrame], None] | None = None,
                capture_pixels: bool = False) -> None:
    """Draw the show of ``engine`` until it stops, the analysis ends or the window closes."""
    o = engine.options
    preset = engine.actions.preset
    size = o.size or (preset.output.width, preset.output.height)
    window = None
    if o.headless:
        ctx = create_headless_context()
    else:
        window = Window(size, title=f"phosphene — {preset.name}", monitor=o.monitor,
                        fullscreen=o.fullscreen, overlay=o.overlay, fit=o.fit)
        ctx = window.ctx
        for key, address in KEY_ADDRESSES.items():
            window.on_key(getattr(window.glfw, key),
                          lambda a=address: engine.post(a, origin="key"))
    overlay = OverlayFeed(engine) if window is not None else None
    driver = ChainDriver(ctx, size, engine.sample_rate)
    period = 1.0 / (o.fps or preset.output.fps)
    pace_s = pace_period(window, period)
    # the display's budget: when the generator falls behind, draw less often, then smaller
    governor = DisplayGovernor(pace_s)
    engine.governor = governor
    engine.display_info = {"mode": "headless" if window is None else "window",
                           "canvas": list(size), "rate_cap_hz": 1.0 / pace_s}
    recorder = engine.recorder
    if recorder is not None:
        recorder.start_frames(size[0], size[1], 1.0 / period)
    worker = engine.worker
    index = 0
    try:
        worker.wait_for_frame(timeout=FIRST_FRAME_TIMEOUT_S)
        next_due = time.monotonic()
        while not engine.stopping:
            if window is not None and not window.poll():
                break
            if engine.analysis_done:
                break
            state = engine.state
            generated = worker.latest()
            now = time.monotonic()
            driver.reload_if_changed()
            try:
                if generated is None:
                    canvas = driver.draw(state, now=now)
                else:
                    canvas = driver.draw(state, generated.image, frame_id=generated.seq,
                                         frame_sample=generated.request.sample_index, now=now)
            except PhospheneError as exc:
                if engine.errors.add("display", str(exc)):    # log a repeat once
                    log.error("frame not drawn: %s", exc)
                time.sleep(period)
                continue
            if window is not None:
                overlay.frame(window, now)
                window.present(canvas)
            else:
                ctx.finish()          # the frame is really drawn, as a swap would wait
            presented = time.monotonic()
            if recorder is not None:     # what a replay needs to draw this frame again
                recorder.write_frame(index, state.sample_index, driver.frame_sample,
                                     driver.previous_sample, driver.frame_id or 0,
                                     driver.crossfade_position,
                                     canvas=None if driver.size == size else driver.size)
            engine.frame_times.add(presented)
            engine.latency.presented(presented, state.sample_index, driver.frame_sample)
            if on_frame is not None:
                pixels = driver.read().copy() if capture_pixels else None
                on_frame(PresentedFrame(index, presented, state, driver.frame_sample, pixels))
            index += 1
            engine.ready.set()
            # how far the GAN frame on screen lags the one the show asks for (not the clock: a
            # frozen show holds an old request, and that is not the generator falling behind)
            gan_age_s = None if driver.frame_sample is None else \
                (state.request.sample_index - driver.frame_sample) / engine.sample_rate
            frame_period = governor.after_frame(presented, presented - now, gan_age_s,
                                                worker.generated)
            wanted = governor.scaled(size)
            if wanted != driver.size:                    # drawn smaller (or back up)
                driver.resize(wanted)
            # pace to the display rate (headless; a window whose swap does not wait)
            next_due = max(next_due + frame_period, presented - frame_period)
            delay = next_due - time.monotonic()
            if delay > 0:
                engine.wait_stop(delay)
    finally:
        engine.display_info["budget"] = governor.summary()
        driver.release()
        if window is not None:
            engine.display_info.update(window=list(window.framebuffer_size),
                                       fullscreen=window.fullscreen, fit=window.fit,
                                       overlay=window.overlay_visible,
                                       refresh_hz=window.refresh_hz)
            window.close()
        else:
            ctx.release()
