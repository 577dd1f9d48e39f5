"""The display in its own process, so drawing can never starve the audio or the generator.

moderngl holds Python's interpreter lock while it waits for the OpenGL driver (a draw, a
texture upload, ``finish``, a buffer swap). In the engine's process that wait stops every other
Python thread: the audio callback cannot copy its block (the input ring overflows and audio is
lost), the analysis falls behind the music, and the generator cannot launch its next frame.
Measured on a 2-core CPU machine at a 1024x1024 canvas (Mesa llvmpipe): the display held the
lock 80-93 % of the time, half of the audio was dropped and the generator made 0.8 frames/s.

So the display loop (``display.run_display``, the same loop a thread would run) runs in a
child process with its own interpreter, and the engine's process serves it:

- each display frame the child sends one message over a pipe: what it drew since the last one
  (for the report, the recording and ``on_frame``), keys pressed in the window, draw errors,
  and whether the overlay is showing; the engine's *display link* thread answers with the
  newest show state (the part the chain needs, ``DisplayState``), overlay text and levels, and
  -- only when the generator finished a new one -- a frame, written as uint8 pixels into shared
  memory (the same conversion the chain's upload makes, so the picture is identical);
- the link thread only touches the shared memory in answer to a request, and the child reads
  it before its next request: no lock is needed;
- on a software renderer (llvmpipe) the child also lowers its CPU priority and rasterizes on
  half the cores, so when the cores are short the audio, analysis and generator are served
  first and the display draws less often (its budget, ``governor.py``, then draws smaller);
- the child ignores Ctrl-C (the engine stops it); if it dies, the link raises and the engine's
  supervisor starts a new one; a window that cannot open is reported as the error it was.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import OrderedDict
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.runtime.display import (DisplayOutcome, DisplayState, EngineSide,
                                            FrameDrawn, FrameToShow, display_setup, run_display)
from phosphene.render.upload import FrameConverter

log = logging.getLogger(__name__)

# Renderers that draw on the CPU: there the display process yields the cores to the engine.
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "software rasterizer")
DISPLAY_NICENESS = 10
# How long the link waits for the child to come back before checking that it still lives.
POLL_S = 0.2
# A child that has not asked for anything this long after the engine stopped is ended.
STOP_GRACE_S = 5.0
STATES_KEPT = 64            # recent states the child may still report as drawn


class DisplayProcessFailed(PhospheneError):
    """The display process could not open or died."""


class _OverlayProxy:
    """Stands in for the window while the engine's ``OverlayFeed`` writes the overlay: what it
    writes goes to the child in the next answer."""

    def __init__(self) -> None:
        self.overlay_visible = False
        self.lines: list[str] | None = None
        self.level = 0.0
        self.lamps: tuple[float, ...] = ()

    def set_overlay_lines(self, lines: list[str]) -> None:
        self.lines = list(lines)

    def set_overlay_levels(self, level: float, lamps: tuple[float, ...] = ()) -> None:
        self.level, self.lamps = float(level), tuple(lamps)


class DisplayChild:
    """The display process and the engine's end of its pipe. Spawned before the engine loads
    its model (importing the GL side takes a second or two), it waits for its ``setup``."""

    def __init__(self, process, conn) -> None:
        self.process = process
        self.conn = conn

    @classmethod
    def spawn(cls) -> "DisplayChild":
        spawn = multiprocessing.get_context("spawn")   # never fork a process with threads
        ours, theirs = spawn.Pipe()
        process = spawn.Process(target=display_process_main, name="phosphene-display",
                                args=(theirs, logging.getLogger().level), daemon=True)
        process.start()
        theirs.close()
        return cls(process, ours)

    def close(self) -> None:
        """End the process (it stops by itself once told, or on a closed pipe)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None
        self.process.join(STOP_GRACE_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(1.0)


class DisplayProcess:
    """Runs the display in a child process and serves it from the engine's process
    (``run()`` blocks, on the thread that would otherwise draw)."""

    def __init__(self, engine, *, on_frame=None, capture_pixels: bool = False):
        self.engine = engine
        self.setup = display_setup(engine, capture_pixels=capture_pixels)
        self.side = EngineSide(engine, self.setup, on_frame)
        engine.governor = self.side              # the overlay reads ``behind`` from it
        self._states: OrderedDict[int, Any] = OrderedDict()
        self._last_state: Any = None
        self._last_key = 0
        self._converter = FrameConverter()
        self._memory: shared_memory.SharedMemory | None = None
        self._overlay = _OverlayProxy()
        self.requests = 0

    # -- the link -------------------------------------------------------------------------------
    def run(self, child: "DisplayChild") -> DisplayOutcome:
        """Serve ``child`` until the display ends; raises ``DisplayProcessFailed`` when it
        could not open or died."""
        self.engine.display_pid = child.process.pid
        ours = child.conn
        ours.send(("setup", self.setup))
        stopping_since: float | None = None
        try:
            while True:
                if not ours.poll(POLL_S):
                    if not child.process.is_alive():
                        raise DisplayProcessFailed(
                            f"the display process exited (code {child.process.exitcode})")
                    if self.engine.stopping:
                        stopping_since = stopping_since or time.monotonic()
                        if time.monotonic() - stopping_since > STOP_GRACE_S:
                            log.warning("the display process did not stop; ending it")
                            return DisplayOutcome("stopped")
                    continue
                try:
                    message = ours.recv()
                except (EOFError, OSError):
                    child.process.join(1.0)
                    raise DisplayProcessFailed(
                        f"the display process exited (code {child.process.exitcode})") from None
                kind = message[0]
                if kind == "want":
                    ours.send(self._answer(*message[1:]))
                elif kind == "opened":
                    self.engine.start_show()
                elif kind == "done":
                    return DisplayOutcome(message[1], message[2])
                elif kind == "failed":
                    log.debug("display process traceback:\n%s", message[2])
                    raise DisplayProcessFailed(message[1])
        finally:
            child.close()
            self._release_memory()

    def _answer(self, have_seq: int, overlay_visible: bool, drawn: list[FrameDrawn],
                keys: list[str], errors: list[str]) -> tuple:
        self.requests += 1
        side, engine = self.side, self.engine
        for frame in drawn:
            side.drawn(frame, self._states.get(frame.state.key))
        for address in keys:
            engine.post(address, origin="key")
        for message in errors:
            side.display_error(message)
        state = engine.state
        if state is not self._last_state:          # a new hop: number it, remember it
            self._last_state = state
            self._last_key += 1
            self._states[self._last_key] = state
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
        shown = DisplayState.of(state, self._last_key)
        worker = engine.worker
        latest = worker.latest()
        frame = None
        if latest is not None and latest.seq != have_seq:
            pixels = self._converter(latest.image)        # uint8 HWC, as the upload makes it
            memory = self._frame_memory(pixels.nbytes)
            np.ndarray(pixels.shape, np.uint8, buffer=memory.buf)[:] = pixels
            frame = (latest.seq, latest.request.sample_index, memory.name, pixels.shape)
        overlay = None
        if overlay_visible:
            proxy = self._overlay
            proxy.overlay_visible = True
            proxy.lines = None
            side.overlay.frame(proxy, time.monotonic())
            overlay = (proxy.lines, proxy.level, proxy.lamps)
        return ("now", side.running(), shown, frame, worker.generated, overlay)

    def _frame_memory(self, nbytes: int) -> shared_memory.SharedMemory:
        memory = self._memory
        if memory is None or memory.size < nbytes:
            self._release_memory()              # the child keeps its mapping until it moves
            memory = self._memory = shared_memory.SharedMemory(create=True, size=nbytes)
        return memory

    def _release_memory(self) -> None:
        if self._memory is not None:
            self._memory.close()
            try:
                self._memory.unlink()
            except FileNotFoundError:
                pass
            self._memory = None


# -- the child process ------------------------------------------------------------------------------
class RemoteFeed:
    """The display loop's feed inside the display process: one request and answer per frame
    (see the module comment)."""

    def __init__(self, conn, setup) -> None:
        self.setup = setup
        self._conn = conn
        self._drawn: list[FrameDrawn] = []
        self._keys: list[str] = []
        self._errors: list[str] = []
        self._overlay_visible = setup.overlay
        self._running: bool | str = True
        self._state: DisplayState | None = None
        self._frame: FrameToShow | None = None
        self._generated = 0
        self._overlay: tuple | None = None
        self._memory: shared_memory.SharedMemory | None = None
        self._niced = False

    def _exchange(self) -> None:
        self._conn.send(("want", self._frame.seq if self._frame is not None else 0,
                         self._overlay_visible, self._drawn, self._keys, self._errors))
        self._drawn, self._keys, self._errors = [], [], []
        _, self._running, self._state, frame, self._generated, self._overlay = self._conn.recv()
        if frame is not None:
            seq, sample_index, name, shape = frame
            if self._memory is None or self._memory.name != name:
                if self._memory is not None:
                    self._memory.close()
                self._memory = _attach(name)
            # a copy: the next answer may write a newer frame there
            image = np.ndarray(shape, np.uint8, buffer=self._memory.buf).copy()
            self._frame = FrameToShow(image, seq, sample_index)

    def opened(self, ctx) -> None:
        """The GL context exists: the engine may start the show. On a software renderer,
        leave the CPU to the engine first."""
        self._conn.send(("opened", ctx.info.get("GL_RENDERER", "")))
        renderer = str(ctx.info.get("GL_RENDERER", "")).lower()
        if not self._niced and any(name in renderer for name in SOFTWARE_RENDERERS):
            self._niced = True
            try:
                os.nice(DISPLAY_NICENESS)
            except (OSError, AttributeError):      # not allowed, or no nice() (Windows)
                pass

    def running(self) -> bool | str:
        self._exchange()
        return self._running

    def wait_first_frame(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._exchange()
            if self._frame is not None or self._running is not True:
                return
            time.sleep(0.01)

    def current(self) -> tuple[DisplayState, FrameToShow | None, int]:
        return self._state, self._frame, self._generated

    def overlay(self, window, now: float) -> None:
        self._overlay_visible = window.overlay_visible
        if self._overlay is None:
            return
        lines, level, lamps = self._overlay
        if lines is not None:
            window.set_overlay_lines(lines)
        window.set_overlay_levels(level, lamps)

    def post_key(self, address: str) -> None:
        self._keys.append(address)

    def drawn(self, frame: FrameDrawn) -> None:
        self._drawn.append(frame)

    def display_error(self, message: str) -> None:
        self._errors.append(message)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None


def _attach(name: str) -> shared_memory.SharedMemory:
    """Map the engine's frame memory without owning it. The engine's process unlinks it; a
    spawned child shares its parent's resource tracker, so registering it again here (Python
    before 3.13 cannot attach without) only repeats an entry the unlink removes."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)     # Python >= 3.13
    except TypeError:
        return shared_memory.SharedMemory(name=name)


def display_process_main(conn, log_level: int) -> None:
    """The display process: wait for the setup, then draw until the engine says stop or the
    window closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the engine's to handle
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    threading.current_thread().name = "display"
    # Mesa's software renderer starts a rasterizer thread per core; half of them leave the
    # other half to the generator and the analysis (read when the context is created; a
    # user's own setting wins; GPU drivers ignore it)
    os.environ.setdefault("LP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
    try:
        message = conn.recv()
    except (EOFError, OSError):           # the engine did not get as far as showing anything
        return
    feed = RemoteFeed(conn, message[1])
    try:
        outcome = run_display(feed)
        conn.send(("done", outcome.reason, outcome.info))
    except BaseException as exc:  # noqa: BLE001 - told to the engine, which decides
        message = str(exc) if isinstance(exc, PhospheneError) else f"{type(exc).__name__}: {exc}"
        try:
            conn.send(("failed", message, traceback.format_exc()))
        except (OSError, EOFError):
            pass
    finally:
        feed.close()
        conn.close()
