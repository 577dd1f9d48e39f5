"""Ableton Link (aalink): follow a Link session's tempo and beat, and lead it from tap tempo.

Link is a shell like OSC and MIDI: what the session says becomes control events on the
engine's queue, stamped with the audio clock, so a recorded set replays it frame-exact:

- ``/phosphene/tempo/bpm <bpm>`` when the session's tempo changes (and once a second while the
  show's tempo differs from it, e.g. after a preset switch reset it);
- ``/phosphene/tempo/beat <beat>`` once a second (and with every tempo change): the session's
  beat now, so the show's beat-synced LFOs (``lfo:sine:4beats``) follow the session's phase.
  Between two such events the show counts beats at the tempo itself.

A tempo the performer sets (tap tempo, ``/phosphene/tempo/bpm``, a MIDI-bound fader) is sent to
the session: Link is a democracy, any peer may change the tempo.

aalink is asyncio-based (a ``Link`` needs a running event loop): the client runs its own loop
on a supervised thread and polls the session every ``poll_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from typing import Any, Callable

from phosphene.errors import PhospheneError
from phosphene.live.show.events import ControlEvent
from phosphene.supervision import Supervisor

log = logging.getLogger(__name__)

INSTALL_HINT = "Ableton Link needs aalink: pip install 'phosphene[link]'"
TEMPO_ADDRESS = "/phosphene/tempo/bpm"
BEAT_ADDRESS = "/phosphene/tempo/beat"
MAX_BPM = 300.0            # the tempo route's range
BPM_EPSILON = 0.01         # a smaller change of the session's tempo is not an event


def import_aalink():
    """The aalink module, or a one-line ``PhospheneError`` saying how to install it."""
    try:
        import aalink  # noqa: PLC0415 - optional: only ``--link`` needs it
    except ImportError:
        raise PhospheneError(INSTALL_HINT) from None
    return aalink


class LinkClock:
    """Join the Link session and feed its tempo and beat into ``events`` as control events.

    ``clock()``: the engine's sample clock (stamps the events); ``show_tempo()``: the tempo the
    performer set on the show (the ``tempo_bpm`` parameter's target; 0 when none), read to
    send a tapped tempo to the session."""

    def __init__(self, *, clock: Callable[[], int] = lambda: 0,
                 events: "queue.Queue[ControlEvent] | None" = None,
                 show_tempo: Callable[[], float] = lambda: 0.0,
                 start_bpm: float = 120.0, quantum: float = 4.0,
                 poll_s: float = 0.02, resync_s: float = 1.0):
        self.clock, self.show_tempo = clock, show_tempo
        self.events: queue.Queue[ControlEvent] = events if events is not None else queue.Queue()
        self.start_bpm, self.quantum = float(start_bpm), float(quantum)
        self.poll_s, self.resync_s = poll_s, resync_s
        self.supervisor: Supervisor | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._aalink = None
        # what the session said last (read by status and the report; atomic assignments)
        self.peers = 0
        self.tempo_bpm = 0.0
        self.beat = 0.0
        self.sent = 0                          # events queued
        self.led = 0                           # tempos sent to the session

    def start(self) -> "LinkClock":
        self._aalink = import_aalink()
        supervisor = self.supervisor or Supervisor()
        self._thread = supervisor.thread("link", self._run, should_stop=self._stop.is_set)
        self._thread.start()
        log.info("Ableton Link: joining the session")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def snapshot(self) -> dict[str, Any]:
        return {"peers": self.peers, "tempo_bpm": self.tempo_bpm, "beat": self.beat,
                "events": self.sent, "tempo_sent_to_session": self.led}

    # -- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        if self._stop.is_set():
            return
        asyncio.run(self._follow())

    async def _follow(self) -> None:
        link = self._aalink.Link(self.start_bpm)
        link.quantum = self.quantum
        link.enabled = True
        try:
            posted: float | None = None        # the tempo last sent to the show
            seen = self.show_tempo()           # the show's set tempo at the previous poll
            next_sync = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                self.peers = int(link.num_peers)
                wanted = float(self.show_tempo())
                if wanted > 0.0 and abs(wanted - seen) > BPM_EPSILON \
                        and (posted is None or abs(wanted - posted) > BPM_EPSILON):
                    # the performer set a tempo (tap, OSC, MIDI): the session follows it
                    link.tempo = wanted
                    posted = wanted
                    self.led += 1
                seen = wanted
                bpm = min(max(float(link.tempo), 1.0), MAX_BPM)
                beat = float(link.beat)
                self.tempo_bpm, self.beat = bpm, beat
                if self.peers > 0:
                    changed = posted is None or abs(bpm - posted) > BPM_EPSILON
                    if changed or now >= next_sync:
                        if changed or abs(wanted - bpm) > BPM_EPSILON:
                            self._post(TEMPO_ADDRESS, bpm)
                        self._post(BEAT_ADDRESS, _positive_beat(beat, self.quantum))
                        posted, next_sync = bpm, now + self.resync_s
                await asyncio.sleep(self.poll_s)
        finally:
            link.enabled = False

    def _post(self, address: str, value: float) -> None:
        self.events.put(ControlEvent(int(self.clock()), address, (float(value),), "link"))
        self.sent += 1


def _positive_beat(beat: float, quantum: float) -> float:
    """Link's beat can be negative just after a session's timeline moved; the route takes
    beats from 0, so whole bars are added (the phase within the bar is kept)."""
    if beat >= 0.0:
        return beat
    return beat + quantum * math.ceil(-beat / quantum)
