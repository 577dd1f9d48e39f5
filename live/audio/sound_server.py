"""The input's identity on a sound server (PulseAudio, or PipeWire's PulseAudio service).

PortAudio reaches PulseAudio through ALSA's ``pulse`` plugin, and the server owns the routing:
when the source our stream records from goes away (an interface unplugged, a module unloaded)
it *moves* the stream to another source -- the laptop's microphone, another card -- and the
stream goes on delivering audio. PortAudio sees nothing, so the show would silently follow the
wrong sound. ``InputRoute`` asks the server (through ``pulsectl``, a client of libpulse) which
source our stream is connected to:

- ``bind()`` after each open: the first time, the source the stream got is the chosen one (the
  server's default, ``PULSE_SOURCE``); after a reconnect a stream the server put elsewhere is
  moved back to it;
- ``moved_to()`` (the stream watchdog, twice a second): the source the stream is on now, when it
  is not the chosen one (a loss: the watchdog closes the stream and feeds silence);
- ``chosen_present()``: whether the chosen source exists, so the watchdog reopens only when it
  came back instead of landing on the substitute again.

Where there is no sound server (a bare ALSA or JACK device, macOS, Windows) or pulsectl is not
installed, every answer is "nothing to say" and the watchdog's stall detection alone applies.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

RECONNECT_S = 5.0      # least time between two attempts to reach the server


class InputRoute:
    """Which sound-server source this process's input stream records from."""

    def __init__(self) -> None:
        self.chosen: str | None = None      # the source the show listens to
        self._pulse: Any = None
        self._next_connect = 0.0
        self._pid = str(os.getpid())

    # -- the server connection ------------------------------------------------------------------
    def _client(self) -> Any:
        if self._pulse is not None:
            return self._pulse
        now = time.monotonic()
        if now < self._next_connect:
            return None
        self._next_connect = now + RECONNECT_S
        try:
            import pulsectl
        except (ImportError, OSError):     # not installed, or no libpulse on this system
            return None
        try:
            self._pulse = pulsectl.Pulse("phosphene-input-watch")
        except Exception:  # noqa: BLE001 - no server here: nothing to watch
            self._pulse = None
        return self._pulse

    def _call(self, method: str, *args: Any) -> Any:
        """A server call; None (and a reconnect later) when the server cannot answer."""
        pulse = self._client()
        if pulse is None:
            return None
        try:
            return getattr(pulse, method)(*args)
        except Exception:  # noqa: BLE001 - the server went away: ask again later
            self.close()
            return None

    def close(self) -> None:
        if self._pulse is not None:
            try:
                self._pulse.close()
            except Exception:  # noqa: BLE001
                pass
            self._pulse = None

    # -- our stream ---------------------------------------------------------------------------------
    def _our_stream(self) -> Any:
        outputs = self._call("source_output_list")
        ours = [o for o in outputs or ()
                if o.proplist.get("application.process.id") == self._pid]
        return max(ours, key=lambda o: o.index) if ours else None   # the newest: just opened

    def _source_name(self, index: int) -> str | None:
        for source in self._call("source_list") or ():
            if source.index == index:
                return source.name
        return None

    def current(self) -> str | None:
        """The source our stream records from now (None: not on a sound server)."""
        stream = self._our_stream()
        return None if stream is None else self._source_name(stream.source)

    def bind(self) -> None:
        """After an open: remember the chosen source, or move the stream back to it."""
        stream = self._our_stream()
        if stream is None:
            return
        now = self._source_name(stream.source)
        if self.chosen is None:
            self.chosen = now
            if now is not None:
                log.info("audio input records from the sound server's source %r", now)
            return
        if now != self.chosen:
            target = next((s for s in self._call("source_list") or () if s.name == self.chosen),
                          None)
            if target is not None:
                self._call("source_output_move", stream.index, target.index)

    def moved_to(self) -> str | None:
        """The source the server moved our stream to, when it is not the chosen one."""
        if self.chosen is None:
            return None
        now = self.current()
        return now if now is not None and now != self.chosen else None

    def chosen_present(self) -> bool:
        """Whether the chosen source exists (True when there is nothing to go by)."""
        if self.chosen is None:
            return True
        sources = self._call("source_list")
        if sources is None:
            return True
        return any(s.name == self.chosen for s in sources)
