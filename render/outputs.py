"""Video outputs: the final picture (after the effect chain) to NDI, a v4l2loopback virtual
camera (Linux), Syphon (macOS) or Spout (Windows).

The display loop hands each presented canvas framebuffer to ``VideoOutputs.frame``. That only
*starts* a readback into a ring of pixel-pack buffers (``readback.AsyncReadback``): the pixels
of frame N are collected when frame N + 1 is submitted, so the display loop never waits for the
GPU. Each output has a sender thread with a one-slot mailbox: the newest frame replaces one
not yet taken (counted as ``dropped``), so a slow receiver or device never stalls drawing.

The packages are optional extras (``pip install 'phosphene[ndi]'``, ``'phosphene[v4l2]'``):
``check_*`` says in one line what is missing, before the show starts.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.render.readback import AsyncReadback

log = logging.getLogger(__name__)

V4L2_MODULE = Path("/sys/module/v4l2loopback")
_VIDEO_DEVICE = re.compile(r"^/dev/video\d+$")


class VideoOutputError(PhospheneError):
    """A video output cannot open (package, platform, device): one line for the performer."""


@dataclass(frozen=True)
class VideoOutputSpec:
    """Which outputs to open (picklable: it travels to the display process)."""

    ndi_name: str | None = None
    v4l2_device: str | None = None
    syphon_name: str | None = None
    spout_name: str | None = None

    @property
    def any(self) -> bool:
        return any((self.ndi_name, self.v4l2_device, self.syphon_name, self.spout_name))


# -- checks (one clear line each) ------------------------------------------------------------------

def check_ndi(name: str) -> None:
    if not name or not name.strip():
        raise VideoOutputError("--ndi: the NDI source needs a name")
    try:
        import NDIlib  # noqa: F401  (optional extra)
    except ImportError:
        raise VideoOutputError("NDI output needs ndi-python: pip install 'phosphene[ndi]'") \
            from None


def check_v4l2(device: str, *, module: Path = V4L2_MODULE) -> None:
    """A v4l2loopback device that exists, on Linux, with pyvirtualcam installed."""
    if not sys.platform.startswith("linux"):
        other = {"darwin": " (on macOS: --syphon NAME)", "win32": " (on Windows: --spout NAME)"}
        raise VideoOutputError(f"--v4l2: v4l2loopback virtual cameras exist on Linux only"
                               f"{other.get(sys.platform, '')}")
    if not _VIDEO_DEVICE.match(device):
        raise VideoOutputError(f"--v4l2 {device}: not a video device path (/dev/videoN)")
    if not module.exists():
        raise VideoOutputError(
            f"--v4l2 {device}: the v4l2loopback kernel module is not loaded "
            "(sudo modprobe v4l2loopback devices=1 video_nr=N exclusive_caps=1)")
    try:
        mode = os.stat(device).st_mode
    except FileNotFoundError:
        raise VideoOutputError(f"--v4l2 {device}: no such device (v4l2loopback's video_nr= "
                               "says which numbers it makes)") from None
    if not stat.S_ISCHR(mode):
        raise VideoOutputError(f"--v4l2 {device}: not a video device")
    try:
        import pyvirtualcam  # noqa: F401  (optional extra)
    except ImportError:
        raise VideoOutputError("the virtual camera needs pyvirtualcam: "
                               "pip install 'phosphene[v4l2]'") from None


def check_syphon(name: str) -> None:
    if sys.platform != "darwin":
        raise VideoOutputError("--syphon: Syphon exists on macOS only")
    try:
        import syphon  # noqa: F401  (optional, macOS)
    except ImportError:
        raise VideoOutputError("Syphon output needs syphon-python: pip install syphon-python") \
            from None


def check_spout(name: str) -> None:
    if sys.platform != "win32":
        raise VideoOutputError("--spout: Spout exists on Windows only")
    try:
        import SpoutGL  # noqa: F401  (optional, Windows)
    except ImportError:
        raise VideoOutputError("Spout output needs SpoutGL: pip install SpoutGL") from None


def check_outputs(spec: VideoOutputSpec) -> None:
    """Raise ``VideoOutputError`` (one line) for the first output that cannot open here."""
    if spec.ndi_name is not None:
        check_ndi(spec.ndi_name)
    if spec.v4l2_device is not None:
        check_v4l2(spec.v4l2_device)
    if spec.syphon_name is not None:
        check_syphon(spec.syphon_name)
    if spec.spout_name is not None:
        check_spout(spec.spout_name)


# -- sinks: where frames go (called on the sender thread only) ------------------------------------

class NdiSink:
    """An NDI source named ``name`` (the receiver sees "HOST (name)"). Frames go out with
    ``send_send_video_async_v2`` (NDI compresses on its own thread); the frame handed over is
    kept alive until the next one replaces it, as the SDK requires. Each frame's timecode is
    the display frame's index."""

    kind = "ndi"

    def __init__(self, name: str, fps: float):
        import NDIlib as ndi  # optional extra

        self.ndi = ndi
        if not ndi.initialize():
            raise VideoOutputError("NDI could not start (this CPU lacks SSE4.2?)")
        create = ndi.SendCreate()
        create.ndi_name = name
        create.clock_video = False        # the display loop paces; never block the sender
        self.sender = ndi.send_create(create)
        if self.sender is None:
            raise VideoOutputError(f"--ndi {name}: NDI could not make the sender")
        self.fps = fps
        self._in_flight = None            # the frame NDI may still be reading
        self.source_name = ""
        try:
            self.source_name = ndi.send_get_source_name(self.sender).ndi_name
        except Exception:  # noqa: BLE001 - only for the report
            pass

    def send(self, rgba: np.ndarray, index: int) -> None:
        ndi = self.ndi
        frame = ndi.VideoFrameV2()
        frame.data = rgba
        frame.FourCC = ndi.FOURCC_VIDEO_TYPE_RGBX
        frame.frame_rate_N = int(round(self.fps * 1000))
        frame.frame_rate_D = 1000
        frame.timecode = int(index)
        ndi.send_send_video_async_v2(self.sender, frame)
        self._in_flight = (rgba, frame)

    def info(self) -> dict[str, Any]:
        try:
            connections = int(self.ndi.send_get_no_connections(self.sender, 0))
        except Exception:  # noqa: BLE001 - only for the report
            connections = None
        return {"source": self.source_name, "connections": connections}

    def close(self) -> None:
        self.ndi.send_destroy(self.sender)      # waits for the frame in flight
        self._in_flight = None


class V4l2Sink:
    """A v4l2loopback device through pyvirtualcam, fixed at the canvas size and rate (a frame
    drawn smaller by the display's budget is scaled back up, nearest neighbour)."""

    kind = "v4l2"

    def __init__(self, device: str, size: tuple[int, int], fps: float):
        import pyvirtualcam  # optional extra

        self.size = size
        try:
            self.camera = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps,
                                              fmt=pyvirtualcam.PixelFormat.RGB, device=device,
                                              backend="v4l2loopback")
        except Exception as exc:  # noqa: BLE001 - pyvirtualcam raises RuntimeError and others
            raise VideoOutputError(f"--v4l2 {device}: {exc}") from None

    def send(self, rgba: np.ndarray, index: int) -> None:
        rgb = rgba[..., :3]
        w, h = self.size
        if rgb.shape[:2] != (h, w):
            rows = np.arange(h) * rgb.shape[0] // h
            cols = np.arange(w) * rgb.shape[1] // w
            rgb = rgb[rows][:, cols]
        self.camera.send(np.ascontiguousarray(rgb))

    def info(self) -> dict[str, Any]:
        return {"device": self.camera.device}

    def close(self) -> None:
        self.camera.close()


class SyphonSink:  # pragma: no cover - macOS only (not run by the tests on Linux)
    """A Syphon server (macOS, syphon-python's Metal server)."""

    kind = "syphon"

    def __init__(self, name: str):
        import syphon  # optional, macOS
        from syphon.utils.numpy import copy_image_to_mtl_texture
        from syphon.utils.raw import create_mtl_texture

        self._copy = copy_image_to_mtl_texture
        self._make_texture = create_mtl_texture
        self.server = syphon.SyphonMetalServer(name)
        self._texture = None
        self._size = None

    def send(self, rgba: np.ndarray, index: int) -> None:
        h, w = rgba.shape[:2]
        if self._size != (w, h):
            self._texture = self._make_texture(self.server.device, w, h)
            self._size = (w, h)
        self._copy(np.ascontiguousarray(rgba), self._texture)
        self.server.publish_frame_texture(self._texture)

    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.server.stop()


class SpoutSink:  # pragma: no cover - Windows only (not run by the tests on Linux)
    """A Spout sender (Windows, SpoutGL's image path: pixels from memory)."""

    kind = "spout"

    def __init__(self, name: str):
        import SpoutGL  # optional, Windows

        self.sender = SpoutGL.SpoutSender()
        self.sender.setSenderName(name)

    def send(self, rgba: np.ndarray, index: int) -> None:
        h, w = rgba.shape[:2]
        GL_RGBA = 0x1908
        self.sender.sendImage(np.ascontiguousarray(rgba).tobytes(), w, h, GL_RGBA, False, 0)
        self.sender.setFrameSync(self.sender.getName())

    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.sender.releaseSender()


# -- the sender thread ------------------------------------------------------------------------------

class SenderThread:
    """Sends frames to one sink from a one-slot mailbox: the newest frame wins; a frame replaced
    before it was taken counts as dropped. ``sink`` is made on this thread (``make``), as some
    SDKs want their calls on one thread."""

    def __init__(self, name: str, make, *, open_timeout_s: float = 30.0):
        self.name = name
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None
        self.info: dict[str, Any] = {}
        self._make = make
        self._sink = None
        self._cond = threading.Condition()
        self._slot: tuple[np.ndarray, int] | None = None
        self._closing = False
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"video out {name}", daemon=True)
        self._thread.start()
        if not self._opened.wait(open_timeout_s):
            raise VideoOutputError(f"{name}: the output did not open in {open_timeout_s:.0f} s")
        if self._open_error is not None:
            raise self._open_error

    def offer(self, frame: np.ndarray, index: int) -> None:
        """Hand over a frame (not modified afterwards by the caller); never blocks for long."""
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = (frame, index)
            self._cond.notify()

    def _run(self) -> None:
        try:
            self._sink = self._make()
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            self._open_error = exc if isinstance(exc, PhospheneError) else \
                VideoOutputError(f"{self.name}: {type(exc).__name__}: {exc}")
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                with self._cond:
                    while self._slot is None and not self._closing:
                        self._cond.wait()
                    if self._slot is None:          # closing, nothing left to send
                        return
                    frame, index = self._slot
                    self._slot = None
                try:
                    self._sink.send(frame, index)
                    self.sent += 1
                except Exception as exc:  # noqa: BLE001 - counted; the show goes on
                    self.errors += 1
                    if self.last_error is None:
                        log.error("video out %s: %s: %s", self.name, type(exc).__name__, exc)
                    self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                self.info = self._sink.info()
                self._sink.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the report
                self.errors += 1
                self.last_error = f"closing: {type(exc).__name__}: {exc}"

    def close(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Send what is in the mailbox, close the sink; the counters for the report."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.errors += 1
            self.last_error = f"did not close in {timeout_s:.0f} s"
        return {**self.info, "sent": self.sent, "dropped": self.dropped, "errors": self.errors,
                **({"last_error": self.last_error} if self.last_error else {})}


# -- what the display loop uses ---------------------------------------------------------------------

class VideoOutputs:
    """The outputs of one display: ``frame(fbo, index)`` after each present, ``close()`` at the
    end (returns the report's ``outputs``)."""

    def __init__(self, ctx: Any, spec: VideoOutputSpec, size: tuple[int, int], fps: float, *,
                 depth: int = 2):
        self.ctx = ctx
        self.depth = depth
        self.senders: dict[str, SenderThread] = {}
        self.readback: AsyncReadback | None = None
        self._readback_size: tuple[int, int] | None = None
        self._indices: deque[int] = deque()
        self.submitted = 0
        makers = {}
        if spec.ndi_name is not None:
            makers["ndi"] = lambda: NdiSink(spec.ndi_name, fps)
        if spec.v4l2_device is not None:
            makers["v4l2"] = lambda: V4l2Sink(spec.v4l2_device, tuple(size), fps)
        if spec.syphon_name is not None:
            makers["syphon"] = lambda: SyphonSink(spec.syphon_name)
        if spec.spout_name is not None:
            makers["spout"] = lambda: SpoutSink(spec.spout_name)
        try:
            for name, make in makers.items():
                self.senders[name] = SenderThread(name, make)
        except BaseException:
            self.close()
            raise

    def frame(self, fbo: Any, index: int) -> None:
        """Start reading the presented canvas; hand the previous one(s) to the senders."""
        if not self.senders:
            return
        size = tuple(fbo.size)
        if size != self._readback_size:             # the display's budget resized the canvas
            self._flush()
            self.readback = AsyncReadback(self.ctx, size[0], size[1], 4, depth=self.depth)
            self._readback_size = size
        done = self.readback.submit(fbo)
        self._indices.append(index)
        self.submitted += 1
        if done is not None:
            self._offer(done.copy(), self._indices.popleft())

    def _offer(self, frame: np.ndarray, index: int) -> None:
        for sender in self.senders.values():
            sender.offer(frame, index)

    def _flush(self) -> None:
        if self.readback is None:
            return
        for frame in self.readback.drain():
            self._offer(frame, self._indices.popleft())
        self.readback.release()
        self.readback = None
        self._readback_size = None

    def close(self) -> dict[str, Any]:
        report = {}
        try:
            self._flush()
        finally:
            for name, sender in self.senders.items():
                report[name] = sender.close()
            self.senders = {}
        return report
