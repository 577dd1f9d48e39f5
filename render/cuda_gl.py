"""CUDA–OpenGL interop: a generator frame on the GPU into a GL pixel buffer, device to device.

Without it a CUDA frame goes device -> pinned host memory -> GL (two PCIe crossings and a wait
per frame: 250 MB/s of copies at 1024² and 60 fps). With it, the frame upload's pixel-unpack
buffer (PBO) is registered with CUDA once; each frame maps it, copies the converted uint8 HWC
tensor into it on the converter's CUDA stream, and unmaps it, and the usual PBO -> texture
upload then runs on the GPU. The PBO, not the texture, is what is registered: the textures are
3-channel sRGB (``GL_SRGB8``), a format CUDA cannot register, and the PBO keeps the texture
upload (and its sRGB decode) exactly as on the host path, so the pixels are the same.

Ordering comes from the CUDA calls themselves: ``cudaGraphicsMapResources`` makes GL work issued
before it (the last upload reading the PBO) finish before later work on the stream, and
``cudaGraphicsUnmapResources`` makes the stream's work (the copy) finish before GL work issued
after it (the texture upload). No host memory is involved, and nothing waits for the whole
device.

The CUDA runtime comes from ``cuda-python`` (``cuda.bindings.runtime``, or ``cuda.cudart`` in
older releases; torch's CUDA wheels already install ``cuda-bindings``, ``pip install
'phosphene[gpu]'`` names it). Every call here needs the GL context current on this thread,
which is where the uploader runs. ``unavailable_reason`` says why interop cannot be used on a
context; the uploader then falls back to the pinned copy and says so once in the log.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

# "0" (or "off", "no", "false") turns interop off: the pinned copy is used on every machine.
ENV_SWITCH = "PHOSPHENE_CUDA_GL_INTEROP"
_OFF_WORDS = ("0", "off", "no", "false")
_logged_reasons: set[str] = set()


class InteropError(RuntimeError):
    """A CUDA graphics call failed (the message names the call and the CUDA error)."""


def cuda_runtime() -> tuple[Any, str | None]:
    """(the CUDA runtime bindings module, None), or (None, why it cannot be imported)."""
    try:
        from cuda.bindings import runtime
        return runtime, None
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python before 12.6
        return cudart, None
    except ImportError:
        return None, ("cuda-python is not installed (pip install 'phosphene[gpu]' or "
                      "cuda-bindings)")


def _gl_strings(ctx: Any) -> tuple[str, str]:
    info = getattr(ctx, "info", {}) or {}
    return str(info.get("GL_VENDOR", "?")), str(info.get("GL_RENDERER", "?"))


def unavailable_reason(ctx: Any, device: Any) -> str | None:
    """Why frames on torch ``device`` cannot reach GL ``ctx`` through CUDA-GL interop, or None
    when they can (the registration itself may still fail: the uploader then falls back)."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in _OFF_WORDS:
        return f"switched off by {ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    if getattr(device, "type", None) != "cuda":
        return f"the frames are not on a CUDA device ({device})"
    runtime, why = cuda_runtime()
    if runtime is None:
        return why
    vendor, renderer = _gl_strings(ctx)
    if "nvidia" not in f"{vendor} {renderer}".lower():
        return f"the OpenGL context is not on an NVIDIA GPU ({renderer}; vendor {vendor})"
    index = device.index if device.index is not None else _current_device()
    devices = _gl_devices(runtime)
    if isinstance(devices, str):
        # not known to work the same on every EGL/GLX stack: the registration decides
        log.debug("CUDA-GL interop: the GL context's CUDA devices are unknown: %s", devices)
    elif index not in devices:
        return (f"the OpenGL context is on CUDA device(s) {devices}, the frames on cuda:{index} "
                "(run the display on the generator's GPU)")
    return None


def note_unavailable(reason: str) -> None:
    """Log, once per reason and process, that frames take the pinned host copy and why."""
    if reason not in _logged_reasons:
        _logged_reasons.add(reason)
        log.info("CUDA frames reach OpenGL through pinned host memory, not CUDA-GL interop: %s",
                 reason)


def _current_device() -> int:
    import torch

    return torch.cuda.current_device()


def _gl_devices(runtime: Any) -> list[int] | str:
    """The CUDA devices of the GL context current on this thread, or why they are unknown."""
    try:
        err, count, devices = runtime.cudaGLGetDevices(
            16, runtime.cudaGLDeviceList.cudaGLDeviceListAll)
    except Exception as exc:  # noqa: BLE001 - an old or broken binding: a reason, not a crash
        return f"cudaGLGetDevices could not be called ({type(exc).__name__}: {exc})"
    if err != runtime.cudaError_t.cudaSuccess:
        return f"cudaGLGetDevices failed ({_error_name(runtime, err)})"
    return [int(d) for d in list(devices)[:count]]


def _error_name(runtime: Any, err: Any) -> str:
    try:
        ok, name = runtime.cudaGetErrorName(err)
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001
        return str(err)


def _call(runtime: Any, name: str, *args: Any) -> tuple:
    """Call ``runtime.name(*args)``; raise InteropError naming the call on a CUDA error.
    Returns the results after the error code."""
    result = getattr(runtime, name)(*args)
    if not isinstance(result, tuple):
        result = (result,)
    err = result[0]
    if err != runtime.cudaError_t.cudaSuccess:
        raise InteropError(f"{name} failed ({_error_name(runtime, err)})")
    return result[1:]


class GLBufferInterop:
    """One OpenGL buffer (a moderngl ``Buffer``) registered with CUDA, written from CUDA tensors.

    Create and use it with the buffer's GL context current; ``release`` before the buffer is.
    """

    def __init__(self, buffer: Any, device_index: int) -> None:
        runtime, why = cuda_runtime()
        if runtime is None:
            raise InteropError(why)
        self._rt = runtime
        self.device_index = int(device_index)
        self.nbytes = int(buffer.size)
        self._resource = None
        _call(runtime, "cudaSetDevice", self.device_index)
        flags = runtime.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
        (self._resource,) = _call(runtime, "cudaGraphicsGLRegisterBuffer", buffer.glo, flags)

    def copy_from(self, tensor: Any, stream: Any) -> None:
        """Copy contiguous CUDA ``tensor`` (all of its bytes) into the buffer, ordered on the
        torch CUDA ``stream``: after the stream's earlier work (the conversion) and before any
        GL command issued after this returns. Does not wait on the host."""
        rt = self._rt
        nbytes = tensor.numel() * tensor.element_size()
        if not tensor.is_contiguous() or nbytes > self.nbytes:
            raise InteropError(f"cannot copy a {tuple(tensor.shape)} tensor "
                               f"({'contiguous' if tensor.is_contiguous() else 'strided'}, "
                               f"{nbytes} bytes) into a {self.nbytes}-byte GL buffer")
        handle = stream.cuda_stream
        _call(rt, "cudaSetDevice", self.device_index)
        _call(rt, "cudaGraphicsMapResources", 1, self._resource, handle)
        try:
            pointer, size = _call(rt, "cudaGraphicsResourceGetMappedPointer", self._resource)
            if int(size) < nbytes:
                raise InteropError(f"the mapped GL buffer has {size} bytes, {nbytes} needed")
            _call(rt, "cudaMemcpyAsync", pointer, tensor.data_ptr(), nbytes,
                  rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, handle)
        finally:
            _call(rt, "cudaGraphicsUnmapResources", 1, self._resource, handle)

    def release(self) -> None:
        if self._resource is not None:
            resource, self._resource = self._resource, None
            try:
                _call(self._rt, "cudaGraphicsUnregisterResource", resource)
            except InteropError as exc:  # at teardown: say so, keep closing
                log.warning("releasing the CUDA-GL buffer: %s", exc)
