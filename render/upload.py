"""Generator frames into OpenGL textures, without allocating on the hot path.

A generator hands over either a float tensor/array in NCHW (or CHW) layout with values in
[-1, 1] (StyleGAN's output convention), or a uint8 HWC image (3 or 4 channels). ``FrameConverter``
turns floats into uint8 HWC in buffers it keeps between calls (torch ops with ``out=``/in-place
on the tensor's own device, then one copy into pinned host memory for CUDA); ``FrameUploader``
streams the bytes through a pixel-unpack buffer (PBO) into one of two textures: the newest frame
and the one before it (the crossfade effect blends them). Buffers are reallocated only when the
frame size or channel count changes.

Textures use an sRGB internal format, so sampling decodes the generator's sRGB values to linear
light *before* filtering: scaling a small frame up to the output is colour-correct.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phosphene.errors import PhospheneError

GL_SRGB8 = 0x8C41
GL_SRGB8_ALPHA8 = 0x8C43

FILTERS = ("nearest", "linear", "bicubic")


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

    def __call__(self, frame: Any) -> np.ndarray:
        if _is_torch(frame):
            return self._from_torch(frame)
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

    def _from_torch(self, frame: Any) -> np.ndarray:
        import torch

        with torch.no_grad():
            if frame.dtype == torch.uint8:
                self._check_hwc(tuple(frame.shape), "torch frame")
                if frame.device.type == "cpu":
                    return frame.contiguous().numpy()
                key = ("torch-u8", str(frame.device), *frame.shape)
                if self._key != key:
                    self._key = key
                    self._host = torch.empty(tuple(frame.shape), dtype=torch.uint8,
                                             pin_memory=torch.cuda.is_available())
                    self._host_np = self._host.numpy()
                self._host.copy_(frame)
                return self._host_np
            if not frame.dtype.is_floating_point:
                raise PhospheneError(f"torch frame: dtype must be uint8 (HWC) or float (NCHW in "
                                     f"[-1, 1]), got {frame.dtype}")
            c, h, w = self._chw_shape(tuple(frame.shape), "torch frame")
            key = ("torch", str(frame.device), c, h, w)
            if self._key != key:
                self._key = key
                self._work = torch.empty((c, h, w), dtype=torch.float32, device=frame.device)
                self._hwc = torch.empty((h, w, c), dtype=torch.uint8, device=frame.device)
                if frame.device.type == "cpu":
                    self._host = self._hwc
                else:
                    self._host = torch.empty((h, w, c), dtype=torch.uint8,
                                             pin_memory=torch.cuda.is_available())
                self._host_np = self._host.numpy()
            work = self._work
            work.copy_(frame.reshape(c, h, w))
            work.add_(1.0).mul_(127.5).add_(0.5).clamp_(0.0, 255.0)
            self._hwc.copy_(work.permute(1, 2, 0))   # float -> uint8 truncates (after the +0.5)
            if self._host is not self._hwc:
                self._host.copy_(self._hwc)
            return self._host_np


class FrameUploader:
    """Keeps the newest two generator frames as textures on one moderngl context.

    ``push(frame)`` converts and uploads; ``newest``/``previous`` are the textures the chain
    samples. ``filter`` is how a frame smaller (or larger) than the canvas is scaled:
    "nearest", "linear" or "bicubic" (Catmull-Rom in the shader over linear taps).
    """

    def __init__(self, ctx: Any, filter: str = "linear") -> None:
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

    def push(self, frame: Any) -> None:
        """Make ``frame`` the newest; the old newest becomes ``previous``."""
        pixels = self.converter(frame)
        first = self._shape != pixels.shape
        if first:
            self._allocate(pixels.shape)
        self._staging.write(pixels)
        self._newest = 1 - self._newest
        self._textures[self._newest].write(self._staging, alignment=1)
        if first:  # no previous frame yet: crossfading from it must show the same picture
            self._textures[1 - self._newest].write(self._staging, alignment=1)
        self.frames_pushed += 1

    def release(self) -> None:
        for tex in self._textures:
            tex.release()
        self._textures = []
        if self._staging is not None:
            self._staging.release()
            self._staging = None
        self._shape = None
