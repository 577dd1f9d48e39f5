"""MIDI input (mido on python-rtmidi): CC -> parameter, note -> trigger, and MIDI learn.

MIDI speaks the same language as OSC: a CC bound to a parameter becomes the control event
``/phosphene/param/<name> <value>`` (0..127 scaled onto the parameter's range), a note bound to a
trigger becomes the OSC address and arguments the preset names (``/phosphene/keyframe/next``).
So the engine has one event queue and one way to apply events.

MIDI learn: ``arm_learn(name)`` (from ``/phosphene/midi/learn NAME`` or a key); the next CC
binds to that parameter and ``on_learn`` is called with the binding, which the engine saves
into the preset file with ``save_cc_binding`` (only the binding's lines change).

MIDI clock in (24 ticks a quarter note, start/stop/continue; ``MidiClock``): the tempo it
beats and where the beat is become the same control events Ableton Link sends,
``/phosphene/tempo/bpm`` and ``/phosphene/tempo/beat``, so a recording replays them.

``api`` picks rtmidi's backend: ``None`` = its default (ALSA on Linux), ``"jack"`` = JACK MIDI
(what the tests use with ``jackd -d dummy``), ``"alsa"``, ``"coremidi"``, ``"winmm"``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from phosphene.errors import PhospheneError
from phosphene.live.show.events import ControlEvent
from phosphene.live.control.preset_text import with_cc_binding
from phosphene.live.control.routes import NamespaceContext, Rejected, validate
from phosphene.supervision import Supervisor

log = logging.getLogger(__name__)

_APIS = {"jack": "UNIX_JACK", "alsa": "LINUX_ALSA", "coremidi": "MACOSX_CORE",
         "winmm": "WINDOWS_MM"}


def midi_backend(api: str | None = None):
    """The mido backend for rtmidi's ``api`` (see the module docstring)."""
    import mido

    if api is None:
        return mido.Backend("mido.backends.rtmidi")
    try:
        return mido.Backend(f"mido.backends.rtmidi/{_APIS[api]}")
    except KeyError:
        raise PhospheneError(f"unknown MIDI API {api!r}; allowed: {', '.join(_APIS)}") from None


@contextlib.contextmanager
def _quiet_probe():
    """Probe MIDI systems without their C libraries' chatter and without side effects.

    ALSA and JACK print to the process's stderr (file descriptor 2) when their system is
    absent, and libjack would try to start a JACK server just to list ports; a listing should
    do neither.
    """
    saved_env = os.environ.get("JACK_NO_START_SERVER")
    os.environ["JACK_NO_START_SERVER"] = "1"
    sys.stderr.flush()
    saved_fd = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        os.close(devnull)
        if saved_env is None:
            os.environ.pop("JACK_NO_START_SERVER", None)
        else:
            os.environ["JACK_NO_START_SERVER"] = saved_env


def list_midi_ports(api: str | None = None) -> list[str]:
    """Names of the MIDI input ports (for ``phosphene devices``); empty when none or when the
    MIDI system is not running (no ALSA sequencer, no JACK server)."""
    backend = midi_backend(api)
    try:
        with _quiet_probe():
            return list(backend.get_input_names())
    except PhospheneError:
        raise
    except Exception as exc:    # noqa: BLE001 - rtmidi raises its own SystemError subclasses
        log.debug("MIDI ports unavailable (%s): %s", api or "default", exc)
        return []


@dataclass(frozen=True)
class CCBinding:
    control: int
    target: str
    channel: int | None = None          # None = any channel

    def matches(self, channel: int, control: int) -> bool:
        return self.control == control and (self.channel is None or self.channel == channel)


@dataclass(frozen=True)
class NoteBinding:
    note: int
    address: str
    args: tuple[Any, ...] = ()
    channel: int | None = None

    def matches(self, channel: int, note: int) -> bool:
        return self.note == note and (self.channel is None or self.channel == channel)


class MidiRouter:
    """Turns MIDI messages into control events using a preset's bindings; thread-safe."""

    def __init__(self, cc: "list[CCBinding]", notes: "list[NoteBinding]",
                 context: Callable[[], NamespaceContext],
                 on_learn: Callable[[CCBinding], None] | None = None):
        self._lock = threading.Lock()
        self.cc, self.notes = list(cc), list(notes)
        self.context, self.on_learn = context, on_learn
        self._learn_target: str | None = None
        self.accepted = 0
        self.ignored = 0

    @classmethod
    def from_preset(cls, preset, context, on_learn=None) -> "MidiRouter":
        cc = [CCBinding(m.control, m.target, m.channel) for m in preset.midi.cc]
        notes = [NoteBinding(n.note, n.address, tuple(n.args), n.channel) for n in preset.midi.notes]
        return cls(cc, notes, context, on_learn)

    def arm_learn(self, target: str) -> None:
        if target not in self.context().parameters:
            raise PhospheneError(f"MIDI learn: unknown parameter {target!r}")
        with self._lock:
            self._learn_target = target
        log.info("MIDI learn armed for %s: move a control", target)

    def cancel_learn(self) -> None:
        with self._lock:
            self._learn_target = None

    @property
    def learning(self) -> str | None:
        return self._learn_target

    def route(self, message, sample_index: int) -> list[ControlEvent]:
        """The control events one MIDI message causes (none for unbound messages)."""
        kind = getattr(message, "type", None)
        if kind == "control_change":
            return self._route_cc(message.channel, message.control, message.value, sample_index)
        if kind == "note_on" and message.velocity > 0:
            return self._route_note(message.channel, message.note, sample_index)
        self.ignored += 1
        return []

    def _route_cc(self, channel: int, control: int, value: int, sample_index: int) -> list[ControlEvent]:
        learned = None
        with self._lock:
            if self._learn_target is not None:
                learned = CCBinding(control, self._learn_target, channel)
                self._learn_target = None
                self.cc = [b for b in self.cc if not (b.control == control and b.channel in (None, channel))]
                self.cc.append(learned)
            bindings = [b for b in self.cc if b.matches(channel, control)]
        if learned is not None and self.on_learn is not None:
            try:
                self.on_learn(learned)
            except Exception:   # noqa: BLE001 - saving failed; the binding still works live
                log.exception("MIDI learn: could not save the binding")
        params = self.context().parameters
        events = []
        for b in bindings:
            spec = params.get(b.target)
            if spec is None:
                continue
            scaled = spec.minimum + (value / 127.0) * (spec.maximum - spec.minimum)
            events.append(ControlEvent(sample_index, f"/phosphene/param/{b.target}", (scaled,), "midi"))
        self.accepted += bool(events)
        self.ignored += not events
        return events

    def _route_note(self, channel: int, note: int, sample_index: int) -> list[ControlEvent]:
        with self._lock:
            bindings = [b for b in self.notes if b.matches(channel, note)]
        events = []
        for b in bindings:
            try:    # the preset's trigger goes through the same validation as OSC
                _, args = validate(b.address, list(b.args), self.context())
            except Rejected as exc:
                log.warning("MIDI note %d: %s", note, exc)
                continue
            events.append(ControlEvent(sample_index, b.address, args, "midi"))
        self.accepted += bool(events)
        self.ignored += not events
        return events


class MidiClock:
    """MIDI clock in: ``tick``s (24 per quarter note) give the tempo, ``start``/``stop``/
    ``continue`` and the song position pointer where the beat is. The tempo is measured over the last ``window`` ticks
    (their arrival times, first to last: one late tick moves it little) and sent when it
    moved by more than ``min_change_bpm``; the beat is sent on start and continue and then on
    every bar (``beats_per_bar``), while the clock runs."""

    TICKS_PER_BEAT = 24

    def __init__(self, *, window: int = 96, min_ticks: int = 24, min_change_bpm: float = 0.1,
                 beats_per_bar: int = 4):
        self.window, self.min_ticks = window, min_ticks
        self.min_change_bpm, self.beats_per_bar = min_change_bpm, beats_per_bar
        self._times: deque[float] = deque(maxlen=window)
        self.tempo_bpm = 0.0                 # the last tempo sent (0: none yet)
        self.running = False
        self.ticks = 0                       # ticks since start (the song position)

    def handle(self, kind: str, arrived_s: float, sample_index: int,
               position: int | None = None) -> list[ControlEvent]:
        """The events one clock message causes; ``arrived_s`` is its arrival (seconds, any
        monotonic clock); ``position``: a song position pointer's value (``songpos``)."""
        events: list[ControlEvent] = []
        if kind == "songpos" and position is not None:
            # a DAW moved its playhead (sent while stopped, before "continue"): the count goes
            # on from there. The pointer counts sixteenths, six ticks each.
            self.ticks = int(position) * self.TICKS_PER_BEAT // 4
            if self.running:            # some send it while playing: the beat jumps now
                events.append(self._event(sample_index, "/phosphene/tempo/beat",
                                          self.ticks / self.TICKS_PER_BEAT))
            return events
        if kind == "clock":
            if self._times and arrived_s - self._times[-1] > 1.0:
                self._times.clear()          # a pause: the old ticks say nothing of the tempo
            self._times.append(arrived_s)
            if len(self._times) > self.min_ticks:
                span = self._times[-1] - self._times[0]
                if span > 0:
                    bpm = 60.0 * (len(self._times) - 1) / (self.TICKS_PER_BEAT * span)
                    if 1.0 <= bpm <= 300.0 and abs(bpm - self.tempo_bpm) > self.min_change_bpm:
                        self.tempo_bpm = bpm
                        events.append(self._event(sample_index, "/phosphene/tempo/bpm", bpm))
            if self.running:
                self.ticks += 1
                if self.ticks % (self.TICKS_PER_BEAT * self.beats_per_bar) == 0:
                    events.append(self._event(sample_index, "/phosphene/tempo/beat",
                                              self.ticks / self.TICKS_PER_BEAT))
        elif kind == "start":
            self.running, self.ticks = True, 0
            events.append(self._event(sample_index, "/phosphene/tempo/beat", 0.0))
        elif kind == "continue":
            self.running = True
            events.append(self._event(sample_index, "/phosphene/tempo/beat",
                                      self.ticks / self.TICKS_PER_BEAT))
        elif kind == "stop":
            self.running = False
        return events

    @staticmethod
    def _event(sample_index: int, address: str, value: float) -> ControlEvent:
        return ControlEvent(sample_index, address, (float(value),), "midi")


_CLOCK_TYPES = frozenset({"clock", "start", "stop", "continue", "songpos"})


class MidiInput:
    """Open MIDI input ports (one name, or ``"all"``) and feed routed events into a queue."""

    def __init__(self, router: MidiRouter, port: str = "all", *, api: str | None = None,
                 clock: Callable[[], int] = lambda: 0,
                 events: "queue.Queue[ControlEvent] | None" = None):
        self.router, self.port_spec, self.api, self.clock = router, port, api, clock
        self.events: queue.Queue[ControlEvent] = events if events is not None else queue.Queue()
        self.ports: list = []
        self.supervisor: Supervisor | None = None     # the engine's, or one of its own
        self.clock_in = MidiClock()                    # MIDI clock: tempo and beat

    def open(self) -> "MidiInput":
        backend = midi_backend(self.api)
        try:
            names = backend.get_input_names()
        except Exception as exc:   # noqa: BLE001
            raise PhospheneError(f"MIDI is not available ({self.api or 'default API'}): {exc}") from None
        if self.port_spec == "all":
            chosen = list(names)
        elif self.port_spec in names:
            chosen = [self.port_spec]
        else:
            raise PhospheneError(f"MIDI input {self.port_spec!r} not found; available: "
                                 f"{', '.join(names) or 'none'} (or 'all')")
        self._incoming: queue.Queue = queue.Queue()
        supervisor = self.supervisor or Supervisor()
        self._worker = supervisor.thread("midi", self._route_loop)
        self._worker.start()
        for name in chosen:
            self.ports.append(backend.open_input(name, callback=self._on_message))
        log.info("MIDI listening on: %s", ", ".join(chosen) or "no ports")
        return self

    def _on_message(self, message) -> None:
        # rtmidi's thread: stamp, hand over and return at once. A slow callback (MIDI learn
        # writing the preset) made rtmidi's JACK input deliver the previous message again.
        self._incoming.put((message.copy(), int(self.clock()), time.monotonic()))

    def _route_loop(self) -> None:
        while True:
            item = self._incoming.get()
            if item is None:
                return
            message, sample_index, arrived_s = item
            try:
                kind = getattr(message, "type", None)
                if kind in _CLOCK_TYPES:
                    routed = self.clock_in.handle(kind, arrived_s, sample_index,
                                                  getattr(message, "pos", None))
                else:
                    routed = self.router.route(message, sample_index)
                for event in routed:
                    self.events.put(event)
            except Exception:   # noqa: BLE001 - an odd message must not stop MIDI
                log.exception("MIDI message %r dropped", message)

    def close(self) -> None:
        for port in self.ports:
            port.close()
        self.ports = []
        if getattr(self, "_worker", None) is not None:
            self._incoming.put(None)
            self._worker.join(timeout=5)
            self._worker = None

    def __enter__(self) -> "MidiInput":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def save_cc_binding(preset_path: str | Path, binding: CCBinding, *,
                    before_write: Callable[[str], None] | None = None) -> str:
    """Write a learned CC binding into the preset file's ``midi.cc`` list, atomically. Only
    the binding's lines change (an entry it replaces goes, the new one is added after the
    others); the rest of the file stays byte for byte (``preset_text``). ``before_write`` is
    called with the new text just before the file is replaced (the preset watcher learns
    that this save is phosphene's own). Returns the new text."""
    path = Path(preset_path)
    # newline="" everywhere: the file's own line endings are kept
    with path.open("r", encoding="utf-8", newline="") as f:
        text = with_cc_binding(f.read(), binding.control, binding.target, binding.channel)
    if before_write is not None:
        before_write(text)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
    tmp.replace(path)
    return text
