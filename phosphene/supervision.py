"""Supervised threads: an exception in a thread of the show is logged once, counted, and the
thread's body runs again from the state its owner kept, so the show never goes silently deaf
or frozen.

Every long-running thread the engine starts (analysis, generator, display, OSC, MIDI, the audio
stream watchdogs) runs its body through ``Supervisor.run``. The body is a loop that keeps its
state in its owner (the engine's clock, the worker's mailbox, the server's socket), so running
it again *is* restarting from the last good state. A body that returns has finished on purpose
(the audio file ended, the server was shut down) and is not restarted.

A body that keeps failing at once is restarted with a growing delay (never more than a second)
rather than spinning; each failure is still counted. ``on_give_up`` lets an owner stop trying
after too many failures in a row (the display, whose window may be gone for good).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

RESTART_DELAY_S = 0.02          # first restart: well within the 100 ms a performer would notice
MAX_RESTART_DELAY_S = 1.0       # a body failing at once, over and over, backs off to this
QUICK_FAILURE_S = 1.0           # a failure sooner than this after the restart counts as "again"


@dataclass
class ThreadFailure:
    thread: str
    error: str                   # "TypeName: message"
    count: int = 1


@dataclass
class Supervisor:
    """Runs thread bodies under supervision and keeps the count of what failed."""

    on_failure: Callable[[str, Exception], None] | None = None   # e.g. the run's error log
    restarts: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], ThreadFailure] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def total_restarts(self) -> int:
        with self._lock:
            return sum(self.restarts.values())

    def snapshot(self) -> dict:
        """For the run report: restarts per thread and each distinct failure with its count."""
        with self._lock:
            return {"restarts": dict(self.restarts),
                    "failures": [{"thread": f.thread, "error": f.error, "count": f.count}
                                 for f in self.failures.values()]}

    def _note(self, name: str, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.restarts[name] = self.restarts.get(name, 0) + 1
            key = (name, text)
            first = key not in self.failures
            if first:
                self.failures[key] = ThreadFailure(name, text)
            else:
                self.failures[key].count += 1
        if first:
            log.error("thread %s failed (%s); restarting it (a repeat is counted, not logged)",
                      name, text, exc_info=exc)
        if self.on_failure is not None:
            try:
                self.on_failure(name, exc)
            except Exception:  # noqa: BLE001 - reporting must never take the thread down
                log.debug("failure hook raised", exc_info=True)

    def run(self, name: str, body: Callable[[], None], *,
            should_stop: Callable[[], bool] = lambda: False,
            on_restart: Callable[[], None] | None = None,
            give_up_after: int | None = None,
            fatal: Callable[[Exception], bool] | None = None) -> bool:
        """Run ``body`` until it returns or ``should_stop()``; restart it after an exception.
        ``give_up_after``: stop after that many failures in a row, each within
        ``QUICK_FAILURE_S`` of its start. ``fatal(exc)``: re-raise instead (e.g. a window that
        cannot open at all before the show started). Returns True when the body finished (or
        was asked to stop), False when supervision gave up."""
        delay = RESTART_DELAY_S
        in_a_row = 0
        while True:
            started = time.monotonic()
            try:
                body()
                return True
            except Exception as exc:  # noqa: BLE001 - the point of supervision
                if fatal is not None and fatal(exc):
                    raise
                if should_stop():
                    return True
                self._note(name, exc)
                quick = time.monotonic() - started < QUICK_FAILURE_S
                in_a_row = in_a_row + 1 if quick else 1
                if give_up_after is not None and in_a_row >= give_up_after:
                    log.error("thread %s failed %d times in a row; giving up", name, in_a_row)
                    return False
                delay = min(delay * 2, MAX_RESTART_DELAY_S) if quick else RESTART_DELAY_S
            time.sleep(delay if in_a_row > 1 else RESTART_DELAY_S)
            if should_stop():
                return True
            if on_restart is not None:
                on_restart()

    def thread(self, name: str, body: Callable[[], None], *,
               should_stop: Callable[[], bool] = lambda: False,
               on_restart: Callable[[], None] | None = None,
               on_exit: Callable[[], None] | None = None) -> threading.Thread:
        """A daemon thread running ``body`` under supervision (not started)."""

        def target() -> None:
            try:
                self.run(name, body, should_stop=should_stop, on_restart=on_restart)
            finally:
                if on_exit is not None:
                    on_exit()

        return threading.Thread(target=target, name=f"phosphene-{name}", daemon=True)
