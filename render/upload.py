"""Generator frames into OpenGL textures, without allocating on the hot path.

A generator hands over either a float tensor/array in NCHW (or CHW) layout with values in
[-1, 1] (StyleGAN's output convention), or a uint8 HWC image (3 or 4 channels). ``FrameConverter``
turns floats into uint8 HWC in buffers it keeps between calls (torch ops with ``out=``/in-place
on the tensor's own device); ``FrameUploader`` streams the bytes through a pixel-unpack buffer
(PBO) into one of two textures: the newest frame and the one before it (the crossfade effect
blends them). Buffers are reallocated only when the frame size or channel count changes.

How the bytes reach the PBO (``FrameUploader.path``), best first:

- ``cuda-gl-interop``: a CUDA frame, a GL context on an NVIDIA GPU and cuda-python: the
  converted frame is copied into the PBO device to device (``cuda_gl.py``); no host round trip;
- ``pinned-async-copy``: any other CUDA frame: conversion and the device -> host copy run on the
  converter's own CUDA stream into pinned memory, and the converter waits only for that copy's
  event, never for the whole device (the generator's next frame may already be running);
- ``device-copy``: frames on another accelerator (Apple MPS): a plain copy to the host;
- ``host``: frames already on the CPU (numpy or torch).

CUDA frames are read on the converter's stream, so it must wait for the frame's producer: pass
``ready``, a CUDA event recorded after the frame was written (the generator's stream), or the
converter waits for everything queued so far on the calling thread's current stream.

Textures use an sRGB internal format, so sampling decodes the generator's sRGB values to linear
light *before* filtering: scaling a small frame up to the output is colour-correct.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.render import cuda_gl

GL_SRGB8 = 0x8C41
GL_SRGB8_ALPHA8 = 0x8C43

FILTERS = ("nearest", "linear", "bicubic")

# FrameUploader.path / FrameConverter.path: how the last frame reached the host or the PBO
PATH_INTEROP = "cuda-gl-interop"
PATH_PINNED = "pinned-async-copy"
PATH_DEVICE_COPY = "device-copy"
PATH_HOST = "host"


def _is_torch(frame: Any) -> bool:
    return type(frame).__module__.startswith("torch")


class FrameConverter:
    """NCHW/CHW float in [-1, 1] or HWC uint8 -> contiguous HWC uint8 numpy array.

    The returned array is owned by the converter and overwritten by the next call: upload it
    (or copy it) before converting the next frame.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._work = None      # float scratch, CHW, on the frame's device
        self._hwc = None       # uint8 HWC, on the frame's device
        self._host = None      # uint8 HWC on the host (pinned for CUDA frames)
        self._host_np: np.ndarray | None = None
        self._stream = None    # CUDA: the converter's own stream (conversion and copies)
        self._copied = None    # CUDA: event recorded after the copy to the host
        self.path: str | None = None   # how the last frame reached the host (PATH_*)

    def __call__(self, frame: Any, ready: Any = None) -> np.ndarray:
        """``frame`` as uint8 HWC on the host. ``ready``: for a CUDA frame, the event after
        which it is complete (else the calling thread's current stream is waited for)."""
        if _is_torch(frame):
            return self._from_torch(frame, ready)
        self.path = PATH_HOST
        return self._from_numpy(np.asarray(frame))

    @staticmethod
    def _chw_shape(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
        if len(shape) == 4:
            if shape[0] != 1:
                raise PhospheneError(f"{what}: expected one frame (N=1), got shape {shape}")
            shape = shape[1:]
        if len(shape) != 3 or shape[0] not in (3, 4):
            raise PhospheneError(f"{what}: float frames must be NCHW or CHW with 3 or 4 channels "
                                 f"in [-1, 1], got shape {tuple(shape)}")
        return shape  # type: ignore[return-value]

    @staticmethod
    def _check_hwc(shape: tuple[int, ...], what: str) -> None:
        if len(shape) != 3 or shape[2] not in (3, 4):
            raise PhospheneError(f"{what}: uint8 frames must be HWC with 3 or 4 channels, "
                                 f"got shape {tuple(shape)}")

    def _from_numpy(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype == np.uint8:
            self._check_hwc(frame.shape, "numpy frame")
            return np.ascontiguousarray(frame)
        if frame.dtype.kind != "f":
            raise PhospheneError(f"numpy frame: dtype must be uint8 (HWC) or float (NCHW in "
                                 f"[-1, 1]), got {frame.dtype}")
        c, h, w = self._chw_shape(frame.shape, "numpy frame")
        chw = frame.reshape(c, h, w)
        key = ("numpy", c, h, w)
        if self._key != key:
            self._key = key
            self._work = np.empty((c, h, w), np.float32)
            self._host_np = np.empty((h, w, c), np.uint8)
        work = self._work
        # (x + 1) * 127.5 + 0.5, clipped, then truncated: rounds [-1, 1] onto 0..255.
        np.add(chw, 1.0, out=work, casting="unsafe")
        np.multiply(work, 127.5, out=work)
        np.add(work, 0.5, out=work)
        np.clip(work, 0.0, 255.0, out=work)
        np.copyto(self._host_np, work.transpose(1, 2, 0), casting="unsafe")
        return self._host_np

    def _from_torch(self, frame: Any, ready: Any = None) -> np.ndarray:
        import torch

        with torch.no_grad():
            if frame.device.type == "cuda":
                return self._cuda_to_host(frame, ready)
            if frame.dtype == torch.uint8:
                self._check_hwc(tuple(frame.shape), "torch frame")
                if frame.device.type == "cpu":
                    self.path = PATH_HOST
                    return frame.contiguous().numpy()
                key = ("torch-u8", str(frame.device), *frame.shape)
                if self._key != key:
                    self._key = key
                    self._host = torch.empty(tuple(frame.shape), dtype=torch.uint8)
                    self._host_np = self._host.numpy()
                self._host.copy_(frame)
                self.path = PATH_DEVICE_COPY
                return self._host_np
            c, h, w = self._float_shape(frame)
            key = ("torch", str(frame.device), c, h, w)
            if self._key != key:
                self._key = key
                self._work = torch.empty((c, h, w), dtype=torch.float32, device=frame.device)
                self._hwc = torch.empty((h, w, c), dtype=torch.uint8, device=frame.device)
                if frame.device.type == "cpu":
                    self._host = self._hwc
                else:
                    self._host = torch.empty((h, w, c), dtype=torch.uint8)
                self._host_np = self._host.numpy()
            self._convert(frame, c, h, w)
            if self._host is not self._hwc:
                self._host.copy_(self._hwc)
                self.path = PATH_DEVICE_COPY
            else:
                self.path = PATH_HOST
            return self._host_np

    def _float_shape(self, frame: Any) -> tuple[int, int, int]:
        if not frame.dtype.is_floating_point:
            raise PhospheneError(f"torch frame: dtype must be uint8 (HWC) or float (NCHW in "
                                 f"[-1, 1]), got {frame.dtype}")
        return self._chw_shape(tuple(frame.shape), "torch frame")

    def _convert(self, frame: Any, c: int, h: int, w: int) -> None:
        """float frame -> self._hwc (uint8 HWC), on the current stream of the frame's device."""
        work = self._work
        work.copy_(frame.reshape(c, h, w))
        work.add_(1.0).mul_(127.5).add_(0.5).clamp_(0.0, 255.0)
        self._hwc.copy_(work.permute(1, 2, 0))   # float -> uint8 truncates (after the +0.5)

    def to_device(self, frame: Any, ready: Any = None) -> tuple[Any, Any]:
        """A CUDA frame as contiguous uint8 HWC on its device, and the CUDA stream on which it
        is being made: the tensor is complete only for work queued on that stream later (or
        after an event recorded there). Reused by the next call, like the host array."""
        import torch

        with torch.no_grad():
            return self._cuda_u8(frame, ready), self._stream

    def _cuda_u8(self, frame: Any, ready: Any) -> Any:
        """Queue the conversion of CUDA ``frame`` on the converter's stream, after its producer;
        returns the uint8 HWC device tensor it fills."""
        import torch

        if frame.dtype == torch.uint8:
            self._check_hwc(tuple(frame.shape), "torch frame")
            shape, kind = tuple(frame.shape), "cuda-u8"
        else:
            c, h, w = self._float_shape(frame)
            shape, kind = (h, w, c), "cuda"
        key = (kind, str(frame.device), *shape)
        if self._key != key:
            self._key = key
            self._stream = torch.cuda.Stream(device=frame.device)
            self._copied = torch.cuda.Event()
            with torch.cuda.stream(self._stream):   # buffers owned by the converter's stream
                if kind == "cuda":
                    self._work = torch.empty((c, h, w), dtype=torch.float32, device=frame.device)
                    self._hwc = torch.empty(shape, dtype=torch.uint8, device=frame.device)
            self._host = self._host_np = None        # pinned lazily: interop never needs it
        stream = self._stream
        # read the frame only once its producer has written it
        if ready is not None:
            stream.wait_event(ready)
        else:
            stream.wait_stream(torch.cuda.current_stream(frame.device))
        # the producer may drop the frame while our work is queued: keep its memory until then
        frame.record_stream(stream)
        with torch.cuda.stream(stream):
            if kind == "cuda-u8":
                return frame.contiguous()      # a copy on our stream only if it is strided
            self._convert(frame, c, h, w)
            return self._hwc

    def _cuda_to_host(self, frame: Any, ready: Any) -> np.ndarray:
        import torch

        hwc = self._cuda_u8(frame, ready)
        if self._host is None:
            self._host = torch.empty(tuple(hwc.shape), dtype=torch.uint8, pin_memory=True)
            self._host_np = self._host.numpy()
        with torch.cuda.stream(self._stream):
            self._host.copy_(hwc, non_blocking=True)
            self._copied.record(self._stream)
        # wait for this copy alone: work on other streams (the next synthesis) runs on
        self._copied.synchronize()
        self.path = PATH_PINNED
        return self._host_np


class FrameUploader:
    """Keeps the newest two generator frames as textures on one moderngl context.

    ``push(frame)`` converts and uploads; ``newest``/``previous`` are the textures the chain
    samples. ``filter`` is how a frame smaller (or larger) than the canvas is scaled:
    "nearest", "linear" or "bicubic" (Catmull-Rom in the shader over linear taps).

    ``path`` says how the last frame got into the PBO (``PATH_*``, see the module comment) and
    ``interop_unavailable`` why that was not CUDA-GL interop (None while interop is used or
    not yet tried). ``interop=False`` never tries it (the pinned copy is then the CUDA path).
    """

    def __init__(self, ctx: Any, filter: str = "linear", interop: bool = True) -> None:
        if filter not in FILTERS:
            raise PhospheneError(f"unknown scaling filter {filter!r}; choose from "
                                 f"{', '.join(FILTERS)}")
        self.ctx = ctx
        self.filter = filter
        self.converter = FrameConverter()
        self._textures: list[Any] = []
        self._staging = None
        self._shape: tuple[int, int, int] | None = None
        self._newest = 0
        self.frames_pushed = 0
        self.path: str | None = None
        self.interop_unavailable: str | None = None
        # why interop will not be tried again (the context and device are checked once)
        self._interop_refused: str | None = None if interop else "switched off (interop=False)"
        self._interop_checked = not interop
        self._interop: cuda_gl.GLBufferInterop | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames, or (0, 0) before the first push."""
        if self._shape is None:
            return (0, 0)
        return (self._shape[1], self._shape[0])

    @property
    def newest(self) -> Any:
        return self._textures[self._newest] if self._textures else None

    @property
    def previous(self) -> Any:
        return self._textures[1 - self._newest] if self._textures else None

    def _allocate(self, shape: tuple[int, int, int]) -> None:
        import moderngl

        self.release()
        h, w, c = shape
        fmt = GL_SRGB8 if c == 3 else GL_SRGB8_ALPHA8
        gl_filter = moderngl.NEAREST if self.filter == "nearest" else moderngl.LINEAR
        for _ in range(2):
            tex = self.ctx.texture((w, h), c, alignment=1, internal_format=fmt)
            tex.filter = (gl_filter, gl_filter)
            tex.repeat_x = tex.repeat_y = False
            self._textures.append(tex)
        self._staging = self.ctx.buffer(reserve=w * h * c)
        self._shape = shape

    def push(self, frame: Any, ready: Any = None) -> None:
        """Make ``frame`` the newest; the old newest becomes ``previous``. ``ready``: for a
        CUDA frame, the event recorded once it was written (see the module comment)."""
        if self._interop_wanted(frame):
            try:
                self._push_interop(frame, ready)
                return
            except cuda_gl.InteropError as exc:     # e.g. the registration was refused
                self._give_up_interop(str(exc))
        pixels = self.converter(frame, ready)
        first = self._shape != pixels.shape
        if first:
            self._allocate(pixels.shape)
        self._staging.write(pixels)
        self._show_staging(first)
        self.path = self.converter.path

    def _show_staging(self, first: bool) -> None:
        """The PBO's pixels into the next texture (a GPU-side copy)."""
        self._newest = 1 - self._newest
        self._textures[self._newest].write(self._staging, alignment=1)
        if first:  # no previous frame yet: crossfading from it must show the same picture
            self._textures[1 - self._newest].write(self._staging, alignment=1)
        self.frames_pushed += 1

    # -- CUDA-GL interop ----------------------------------------------------------------------
    def _interop_wanted(self, frame: Any) -> bool:
        if self._interop_refused is not None:
            self.interop_unavailable = self._interop_refused
            return False
        device = frame.device if _is_torch(frame) else "host"
        if getattr(device, "type", None) != "cuda":
            # why this frame took another path; not a reason to refuse a later CUDA frame
            self.interop_unavailable = f"the frames are not on a CUDA device ({device})"
            return False
        if not self._interop_checked:
            self._interop_checked = True
            reason = cuda_gl.unavailable_reason(self.ctx, device)
            if reason is not None:
                self._give_up_interop(reason)
                return False
        self.interop_unavailable = None
        return True

    def _give_up_interop(self, reason: str) -> None:
        self._interop_checked = True
        self._interop_refused = self.interop_unavailable = reason
        self._release_interop()
        cuda_gl.note_unavailable(reason)

    def _push_interop(self, frame: Any, ready: Any) -> None:
        hwc, stream = self.converter.to_device(frame, ready)
        shape = tuple(hwc.shape)
        first = self._shape != shape
        if first:
            self._allocate(shape)
        if self._interop is None:
            self._interop = cuda_gl.GLBufferInterop(self._staging, hwc.device.index)
        self._interop.copy_from(hwc, stream)    # unmapping orders it before the GL upload
        self._show_staging(first)
        self.path = PATH_INTEROP

    def _release_interop(self) -> None:
        if self._interop is not None:
            self._interop.release()
            self._interop = None

    def release(self) -> None:
        self._release_interop()               # before the buffer it registered goes
        for tex in self._textures:
            tex.release()
        self._textures = []
        if self._staging is not None:
            self._staging.release()
            self._staging = None
        self._shape = None
