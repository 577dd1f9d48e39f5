"""The generator worker: a thread that renders the newest latent request, and only that.

The generator is usually slower than both the analyzer (a request every hop, ~5 ms) and the
display. So requests go into a *single-slot mailbox*: ``submit`` overwrites whatever is
waiting, and the thread always renders the freshest request when it becomes free. A queue
would build a backlog of stale pictures and the show would lag further behind the music with
every frame.

On CUDA each frame is rendered on the worker's own CUDA stream and the worker waits for that
stream's completion event before it publishes the frame: ``render_s`` (the report's
generator_ms) is then the real frame time, not the time to launch kernels, and the display's
device->host copy (on its own stream) never queues behind the next frame's synthesis on the
default stream. Only this thread waits on the event.

A failing generator (out of GPU memory, a NaN-producing checkpoint) must not stop the show:
the exception is logged (once per kind, then counted), the last good frame stays on screen,
and the worker goes on with the next request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from phosphene.live.show.director import LatentRequest
from phosphene.supervision import Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedFrame:
    """A finished generator frame and what it was made from."""

    seq: int                  # 1, 2, 3, ... in the order frames were finished
    image: Any                # whatever the render callable returns (NCHW tensor in [-1, 1])
    request: LatentRequest
    finished_at: float        # time.monotonic() when the frame was ready
    render_s: float           # how long generating it took


class GeneratorWorker:
    """Run ``render(request)`` on its own thread for the newest submitted request.

    ``submit`` never blocks. ``latest()`` returns the newest finished ``GeneratedFrame`` (or
    None before the first); the display loop compares ``seq`` to know whether it is new.
    """

    def __init__(self, render: Callable[[LatentRequest], Any], *, name: str = "generator",
                 supervisor: Supervisor | None = None, device: Any = None):
        """``device``: the generator's torch device; on CUDA, frames are rendered on a
        dedicated stream and timed to their completion."""
        self._render = render
        self._device_stream = DeviceStream.for_device(device)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: LatentRequest | None = None
        self._latest: GeneratedFrame | None = None
        self._stop = False
        # supervised: anything that escapes a frame's own error handling restarts the loop
        # with the mailbox and the last good frame as they were
        self.supervisor = supervisor or Supervisor()
        self._thread = self.supervisor.thread(name, self._run, should_stop=lambda: self._stop)
        self.generated = 0          # frames finished
        self.superseded = 0         # requests replaced in the mailbox before being rendered
        self._submitted: LatentRequest | None = None   # the last request submitted
        self.errors = 0             # render calls that raised
        self.error_kinds: dict[str, int] = {}
        self.render_times_s: list[float] = []   # recent render durations (bounded)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "GeneratorWorker":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> "GeneratorWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- producer side (analysis thread) --------------------------------------------------------
    def submit(self, request: LatentRequest) -> None:
        """Make ``request`` the one to render next, replacing any request still waiting. The
        very request submitted last (the same object: a frozen show) is not rendered again."""
        if request is self._submitted:
            return
        self._submitted = request
        with self._lock:
            if self._pending is not None:
                self.superseded += 1
            self._pending = request
            self._wake.notify()

    # -- consumer side (display thread) -------------------------------------------------------
    def latest(self) -> GeneratedFrame | None:
        return self._latest     # one reference read: atomic

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def wait_for_frame(self, after_seq: int = 0, timeout: float = 30.0) -> GeneratedFrame | None:
        """Block until a frame newer than ``after_seq`` exists (start-up, tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self._latest
            if frame is not None and frame.seq > after_seq:
                return frame
            time.sleep(0.005)
        return None

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                request, self._pending = self._pending, None
            started = time.monotonic()
            try:
                image = self._device_stream.run(self._render, request)
            except Exception as exc:  # noqa: BLE001 - OOM, bad weights: keep the last good frame
                self._note_error(exc)
                continue
            finished = time.monotonic()
            self.generated += 1
            self.render_times_s.append(finished - started)
            if len(self.render_times_s) > 4096:
                del self.render_times_s[:2048]
            self._latest = GeneratedFrame(self.generated, image, request, finished,
                                          finished - started)

    def _note_error(self, exc: Exception) -> None:
        self.errors += 1
        kind = type(exc).__name__
        first = kind not in self.error_kinds
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        if first:
            log.error("generator failed (%s: %s); keeping the last good frame (further %s "
                      "errors are counted, not logged)", kind, exc, kind)
        if "out of memory" in str(exc).lower():
            _release_cached_gpu_memory()


class DeviceStream:
    """Where a render runs: the calling thread as it is (CPU, MPS), or, on CUDA, a stream of
    its own with a completion event the calling thread waits on."""

    def __init__(self, device: Any = None):
        self.device = device
        self._stream = None

    @classmethod
    def for_device(cls, device: Any) -> "DeviceStream":
        if device is not None and getattr(device, "type", str(device).split(":")[0]) == "cuda":
            return CudaStream(device)
        return cls(device)

    def run(self, render: Callable[[LatentRequest], Any], request: LatentRequest) -> Any:
        return render(request)


class CudaStream(DeviceStream):
    def run(self, render: Callable[[LatentRequest], Any], request: LatentRequest) -> Any:
        import torch

        if self._stream is None:        # created by the thread that renders
            self._stream = torch.cuda.Stream(self.device)
        # inputs copied in by the caller's default stream are ordered before this frame
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            image = render(request)
            done = torch.cuda.Event()
            done.record(self._stream)
        done.synchronize()              # this thread only: the display and audio go on
        return image


def _release_cached_gpu_memory() -> None:
    """After a CUDA OOM, hand cached blocks back so the next (maybe smaller) frame can fit."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort only
        pass
