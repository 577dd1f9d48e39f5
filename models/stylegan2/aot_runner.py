"""Runs an AOTInductor-compiled network without holding Python's interpreter lock.

torch's own loader (``torch._inductor.aoti_load_package``) holds the interpreter lock for the
whole call (pytorch/pytorch#197516): a 20-30 ms CPU frame then blocks every other Python
thread of the show. Measured on the 2-core VM with builtin:abstract at 256x256: a thread that
wakes every 5 ms (as the audio analysis does) woke up to 20 ms late (p99) while frames were
rendered through it, against 2.5 ms with eager frames; in a 95 s stage check the analysis fell
half a second to a second behind. This module loads the package's shared library itself and
calls its C interface (``aoti_runtime/interface.h``) through ctypes, which lets go of the lock
for the length of a foreign call: late wake-ups of 1.9 ms (p99), the same frame time.

Tensors cross the C interface as ``AtenTensorHandle`` pointers, made and taken back by torch's
own helpers (``torch._C._aoti``, the ones inductor's C++ wrapper uses), which trade them as
capsules.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import zipfile
from pathlib import Path

import torch

_api = ctypes.pythonapi
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class LibraryRunner:
    """The compiled model in an AOTInductor package (``.pt2``), on the CPU.

    ``run(tensors)`` takes the flat inputs in the exported order and returns the outputs. One
    caller at a time (the container holds one model instance)."""

    def __init__(self, package: Path):
        with zipfile.ZipFile(package) as archive:
            libraries = [n for n in archive.namelist()
                         if n.endswith(".so") and "/data/aotinductor/" in n]
            if len(libraries) != 1:
                raise ValueError(f"{package}: expected one compiled library in the package, "
                                 f"found {len(libraries)}")
            # a private copy: the loader keys libraries on their path, and a package rebuilt
            # under the same name must not get the old one back; unlinked once mapped
            fd, copy = tempfile.mkstemp(prefix="phosphene-synthesis-", suffix=".so")
            with os.fdopen(fd, "wb") as out:
                out.write(archive.read(libraries[0]))
        try:
            self._lib = ctypes.CDLL(copy)      # a CDLL's calls release the interpreter lock
        finally:
            os.unlink(copy)
        lib = self._lib
        for name in ("AOTInductorModelContainerCreateWithDevice",
                     "AOTInductorModelContainerRun", "AOTInductorModelContainerDelete",
                     "AOTInductorModelContainerGetNumInputs",
                     "AOTInductorModelContainerGetNumOutputs"):
            getattr(lib, name).restype = ctypes.c_int32      # AOTIRuntimeError: 0 = success
        lib.AOTInductorModelContainerRun.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
            ctypes.c_void_p, ctypes.c_void_p]
        self._container = ctypes.c_void_p()
        self._check(lib.AOTInductorModelContainerCreateWithDevice(
            ctypes.byref(self._container), ctypes.c_size_t(1), b"cpu", None), "create")
        counts = [ctypes.c_size_t(), ctypes.c_size_t()]
        self._check(lib.AOTInductorModelContainerGetNumInputs(
            self._container, ctypes.byref(counts[0])), "count inputs")
        self._check(lib.AOTInductorModelContainerGetNumOutputs(
            self._container, ctypes.byref(counts[1])), "count outputs")
        self.num_inputs, self.num_outputs = counts[0].value, counts[1].value

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"the compiled synthesis failed to {what} (AOTInductor status "
                               f"{status}; its message is on stderr)")

    def run(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(tensors) != self.num_inputs:
            raise ValueError(f"the compiled synthesis takes {self.num_inputs} tensors, "
                             f"got {len(tensors)}")
        # new handles the model takes over (and frees); the array itself stays ours
        handles = torch._C._aoti.unsafe_alloc_void_ptrs_from_tensors(tensors)
        inputs = (ctypes.c_void_p * len(handles))(
            *[_api.PyCapsule_GetPointer(h, None) for h in handles])
        outputs = (ctypes.c_void_p * self.num_outputs)()
        self._check(self._render(inputs, len(handles), outputs), "run")
        return torch._C._aoti.alloc_tensors_by_stealing_from_void_ptrs(
            [_api.PyCapsule_New(pointer, None, None) for pointer in outputs])

    def _render(self, inputs, count: int, outputs) -> int:
        """The foreign call itself, the span ctypes runs without the interpreter lock (a
        method of its own so that a test can see a thread inside it)."""
        return self._lib.AOTInductorModelContainerRun(
            self._container, inputs, count, outputs, self.num_outputs, None, None)

    def __del__(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None and container.value:
            self._lib.AOTInductorModelContainerDelete(container)
