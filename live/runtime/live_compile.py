"""The compiled live synthesis: whether to use it, and building it without holding up the show.

``compile_for_live`` (``models/stylegan2/fast.py``) is worth having wherever it works: a CUDA
graph on a GPU (one launch per frame instead of a hundred), and ~1.55x the eager network on a
CPU (builtin:abstract at 256x256, 2-core VM; 41 instead of 24 generated frames/s in a 512x512
show). But a first compile takes minutes on a laptop CPU, and a performer who starts the show
wants a picture now. So:

- ``auto`` (the default of ``--compile`` and a preset's ``generator.compile``) compiles on CUDA,
  and on the CPU when a C++ compiler is on the PATH (inductor's CPU backend needs one). Apple's
  MPS stays eager: no CUDA graphs there, and torch.compile's MPS backend is young.
- The show starts at once with eager frames. A background thread (one per process, see
  ``_compile_thread``), at low priority (a nice value on Linux: the compiler's processes
  inherit it), compiles -- on the CPU by waiting for a child process that builds an
  ahead-of-time package, cached for the next show (``models/stylegan2/aot.py`` says why not
  in this process) -- checks the compiled network
  against eager on the same input, and only then swaps it in between two frames
  (``FrameGenerator.synthesis`` is one attribute, read once per frame). A compile that fails
  or disagrees leaves the show eager and says why in the log and the report.
- ``PHOSPHENE_COMPILE=auto|on|off`` overrides the preset (not an explicit ``--compile`` or
  ``--no-compile``), for scripted runs: the test suite sets ``off`` so that its short shows do
  not spend their CPU compiling.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from typing import Any

import torch

from phosphene.errors import PhospheneError
from phosphene.models.stylegan2 import aot
from phosphene.models.stylegan2.fast import compile_for_live

log = logging.getLogger(__name__)

CHOICES = ("auto", "on", "off")
ENVIRONMENT = "PHOSPHENE_COMPILE"
BACKGROUND_NICE = 10        # the compile thread (and its compiler processes) yield to the show


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU, or None."""
    try:
        from torch._inductor import config

        names = config.cpp.cxx
    except Exception:  # noqa: BLE001 - an inductor without this setting: the usual names
        names = (None, "g++")
    names = [names] if isinstance(names, str) else list(names)
    for name in [n for n in names if n] + ["g++", "c++", "clang++"]:
        found = shutil.which(name)
        if found:
            return found
    return None


def _as_choice(value: Any, where: str) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    text = str(value).strip().lower()
    aliases = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}
    text = aliases.get(text, text)
    if text not in CHOICES:
        raise PhospheneError(f"{where}: must be one of {', '.join(CHOICES)}, got {value!r}")
    return text


def compile_decision(option: bool | None, preset_value: Any, device_type: str, *,
                     auto_on_cpu: bool = True) -> tuple[bool, str]:
    """(compile?, why) from ``--compile/--no-compile`` (None: not given), else the
    environment's ``PHOSPHENE_COMPILE``, else the preset's ``generator.compile``; then the
    device decides ``auto`` (on the CPU only with ``auto_on_cpu``: an offline render does
    not earn a CPU compile back)."""
    env = os.environ.get(ENVIRONMENT)
    if option is not None:
        choice, source = _as_choice(option, "--compile"), \
            "--compile" if option else "--no-compile"
    elif env:
        choice, source = _as_choice(env, ENVIRONMENT), f"{ENVIRONMENT}={env}"
    else:
        choice, source = _as_choice(preset_value, "generator.compile"), \
            f"the preset's generator.compile: {preset_value}"
    if choice == "on":
        return True, f"asked for ({source})"
    if choice == "off":
        return False, f"not asked for ({source})"
    if device_type == "cuda":
        return True, "auto: CUDA (a CUDA graph per frame)"
    if device_type == "cpu" and not auto_on_cpu:
        return False, "auto: eager on the CPU here (a compile costs more than it saves)"
    if device_type == "cpu":
        compiler = cpp_compiler()
        if compiler:
            return True, f"auto: CPU with a C++ compiler ({compiler})"
        return False, "auto: no C++ compiler on the PATH for torch.compile's CPU backend"
    return False, f"auto: eager on {device_type} (no CUDA graphs there)"


class BackgroundCompile:
    """Compiles ``generator``'s synthesis on a low-priority thread and swaps it in when it
    agrees with eager. ``info`` is the report's ``frames.synthesis``."""

    def __init__(self, generator: Any, why: str):
        self.generator = generator
        self._info: dict[str, Any] = {"compiled": False, "reason": f"compiling ({why})",
                                      "why": why, "state": "compiling"}
        self._live = None             # the compiled synthesis once swapped in
        # the caller's torch thread count (the engine's choice, which the worker thread it
        # starts next inherits): a compile is specialised on it, and the long-lived compile
        # thread keeps whatever count it first had
        self.threads = torch.get_num_threads()
        self.done = threading.Event()
        self._cancelled = False

    @property
    def info(self) -> dict[str, Any]:
        """What runs now: a compiled synthesis that failed mid-show and went back to eager
        says so here (and the frames it ran eager for other inputs are counted)."""
        live = self._live
        if live is None:
            return dict(self._info)
        state = "compiled" if live.compiled else "eager"
        return {**self._info, "compiled": live.compiled, "reason": live.reason, "state": state,
                "eager_calls": live.eager_calls}

    def start(self) -> "BackgroundCompile":
        _compile_thread().put(self._run)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def cancel(self) -> None:
        """The show is ending: a compile still running stops (on the CPU its child process
        is ended; a package it had not finished is not kept) and the report says so."""
        if self.done.is_set():
            return
        self._cancelled = True
        self._info = {**self._info, "state": "eager",
                      "reason": "the show ended before the compile finished"}
        if aot.stop_builds():
            log.warning("the show ended before its compiled synthesis was built (a first "
                        "build needs minutes of spare CPU, which a show on a few cores "
                        "leaves little of): `phosphene live --prepare` with this preset "
                        "builds it once, and later shows start compiled")

    def _run(self) -> None:
        started = time.monotonic()
        try:
            torch.set_num_threads(self.threads)
            generator = self.generator
            if generator.device.type != "cpu" and (os.cpu_count() or 1) <= 4:
                # inductor's pool of compile processes would take the cores the show needs:
                # one compile at a time, in this (low-priority) thread. (On the CPU the
                # compile is a child process of its own, which sees to that itself: aot.py.)
                from torch._inductor import config as inductor_config

                inductor_config.compile_threads = 1
            with torch.inference_mode():
                live = compile_for_live(generator.G, force_fp32=generator.force_fp32,
                                        nice=BACKGROUND_NICE)
        except Exception as exc:  # noqa: BLE001 - the show goes on eager
            self._finish(False, f"compile failed ({type(exc).__name__}: {exc})"[:300], started)
            return
        if live.compiled:
            self._live = live
            generator.synthesis = live          # the worker's next frame uses it
        self._finish(live.compiled, live.reason, started)

    def _finish(self, compiled: bool, reason: str, started: float) -> None:
        seconds = time.monotonic() - started
        if self._cancelled:      # its end is the show's, not a failure of its own
            self.done.set()
            return
        self._info = {**self._info, "compiled": compiled, "reason": reason,
                     "state": "compiled" if compiled else "eager",
                     "compile_s": round(seconds, 1)}
        if compiled:
            log.info("live synthesis compiled in %.0f s (%s); frames now come from it",
                     seconds, reason)
        else:
            log.warning("live synthesis stays eager: %s", reason)
        self.done.set()


_jobs: queue.SimpleQueue | None = None
_jobs_lock = threading.Lock()


def _compile_thread() -> queue.SimpleQueue:
    """The queue of the process's one compile thread, started on first use and kept for the
    life of the process. Kept, not one thread per compile: with torch 2.11, once the thread
    that made a process's first torch.compile has ended, the next compile on any other thread
    crashes the process (a segfault entering dynamo's fake-tensor mode; reproduced with a
    plain conv function). A daemon: a show that ends mid-compile does not wait for it."""
    global _jobs
    with _jobs_lock:
        if _jobs is None:
            _jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(_jobs,), name="compile", daemon=True).start()
    return _jobs


def _serve(jobs: queue.SimpleQueue) -> None:
    _lower_this_threads_priority()
    while True:
        jobs.get()()       # a job catches its own errors (BackgroundCompile._run)


def _lower_this_threads_priority() -> None:
    """A nice value for this thread only (Linux: nice is per thread, and processes it starts,
    such as the C++ compiler, inherit it); elsewhere nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass
