"""Control events and the event timeline.

OSC, MIDI, keys and a replayed recording all turn what they receive into a ``ControlEvent``: an
OSC-style address with its arguments, stamped with the audio sample index. What an address does
is declared once, in ``phosphene.live.control.routes``; the show only offers the operations the
routes call.

**The event rule** (one clock for live and offline): the show's clock is ``sample_index``, the
end of the last hop it advanced by. An event stamped ``s`` is applied before the first hop that
ends *after* ``s``. Live, the engine stamps an incoming event with its clock (the last hop
processed) and drains the queue at the start of the next hop, so stamp ``s`` = "arrived after
the hop ending at ``s``": a replay applies it before exactly the same hop, whenever within the
hop it arrived. Offline, ``EventSchedule.due`` picks the same events out of a sorted log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PREFIX = "/phosphene/"
# The record of a preset switch the show performed (written by the show, replayed by the
# route of the same name): args (name, preset YAML, crossfade_s, base_dir or "").
PRESET_LOADED = PREFIX + "preset/loaded"
# The record of an edit of the running preset's file applied live (written by the show,
# replayed by the route of the same name): args (name, preset YAML, crossfade_s).
PRESET_EDITED = PREFIX + "preset/edited"


@dataclass(frozen=True)
class ControlEvent:
    sample_index: int                 # audio clock when it arrived
    address: str                      # e.g. "/phosphene/param/psi"
    args: tuple[Any, ...] = ()
    origin: str = "osc"               # "osc" | "midi" | "key" | "preset" (a recorded switch)
    # where an answer goes: the OSC sender's (host, port), for a failure found after
    # validation (``/phosphene/error``); None for MIDI, keys and recordings. Not recorded.
    reply_to: tuple[str, int] | None = field(default=None, compare=False)


class EventSchedule:
    """A recorded event log, handed out hop by hop by the event rule (module doc): ``due(end)``
    returns, in order, the not yet returned events with ``sample_index < end`` (stamped before
    the hop ending at ``end`` finished)."""

    def __init__(self, events: Iterable[ControlEvent]):
        # stable sort: events with the same stamp keep the order they were received in
        self._events = sorted(events, key=lambda e: e.sample_index)
        self._next = 0

    def __len__(self) -> int:
        return len(self._events)

    def due(self, frame_end: int) -> list[ControlEvent]:
        start = stop = self._next
        while stop < len(self._events) and self._events[stop].sample_index < frame_end:
            stop += 1
        self._next = stop
        return self._events[start:stop]
