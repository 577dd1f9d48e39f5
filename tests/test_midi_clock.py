"""MIDI clock in: 24 ticks a quarter note and start/stop/continue become tempo and beat events,
measured from timestamps (pure) and from an rtmidi port on ``jackd -d dummy``."""

from __future__ import annotations

import time
import uuid

import mido
import pytest

from phosphene.live.control import routes
from phosphene.live.control.midi import MidiClock, MidiInput, MidiRouter, list_midi_ports, midi_backend
from phosphene.live.control.routes import NamespaceContext
from phosphene.live.show.presets import load_preset
from phosphene.live.show.show import GeneratorFacts, Show
from live_engine_helpers import tiny_generator
from test_live_midi import jack_server  # noqa: F401 - the private jackd fixture


def _ticks(clock: MidiClock, bpm: float, count: int, start_s: float = 0.0) -> list:
    step = 60.0 / bpm / 24
    events = []
    for i in range(count):
        events += clock.handle("clock", start_s + i * step, 1000 + i)
    return events


def test_ticks_give_the_tempo_and_start_the_beat_count():
    clock = MidiClock()
    events = clock.handle("start", 0.0, 0)
    assert [(e.address, e.args) for e in events] == [("/phosphene/tempo/beat", (0.0,))]
    events = _ticks(clock, 100.0, 24 * 4)
    tempos = [e.args[0] for e in events if e.address == "/phosphene/tempo/bpm"]
    assert tempos and tempos[-1] == pytest.approx(100.0, abs=0.01)
    assert len(tempos) == 1                            # a steady clock: one tempo event
    beats = [e.args[0] for e in events if e.address == "/phosphene/tempo/beat"]
    assert beats == [4.0]                              # one bar counted
    assert all(e.origin == "midi" for e in events)


def test_stop_and_continue_keep_the_song_position():
    clock = MidiClock()
    clock.handle("start", 0.0, 0)
    _ticks(clock, 120.0, 30)
    clock.handle("stop", 1.0, 0)
    _ticks(clock, 120.0, 10, start_s=1.1)              # ticks while stopped do not count
    events = clock.handle("continue", 2.0, 0)
    assert [(e.address, e.args) for e in events] == [("/phosphene/tempo/beat", (30 / 24,))]


def test_song_position_moves_the_beat_count():
    clock = MidiClock()
    clock.handle("start", 0.0, 0)
    clock.handle("stop", 0.5, 0)
    # the DAW's playhead to bar 5 (16 beats = 64 sixteenths) while stopped: no beat yet ...
    assert clock.handle("songpos", 0.6, 0, position=64) == []
    # ... continue starts from there
    events = clock.handle("continue", 0.7, 0)
    assert [(e.address, e.args) for e in events] == [("/phosphene/tempo/beat", (16.0,))]
    # a pointer while running jumps the beat at once
    events = clock.handle("songpos", 0.8, 0, position=6)
    assert [(e.address, e.args) for e in events] == [("/phosphene/tempo/beat", (1.5,))]


def test_a_tempo_change_is_followed():
    clock = MidiClock()
    _ticks(clock, 100.0, 96)
    _ticks(clock, 140.0, 200, start_s=60.0 / 100 / 24 * 96)
    assert clock.tempo_bpm == pytest.approx(140.0, abs=0.1)


@pytest.fixture()
def clock_port(jack_server):  # noqa: F811
    """A MIDI clock source (a drum machine stand-in): an rtmidi output port on JACK."""
    port_name = f"clock-{uuid.uuid4().hex[:6]}"
    out = midi_backend("jack").open_output(port_name, virtual=True)
    full = next(n for n in list_midi_ports("jack") if n.endswith(port_name))
    yield out, full
    out.close()


def test_midi_clock_from_a_jack_port_at_100_bpm_sets_the_tempo(clock_port):
    out, port = clock_port
    router = MidiRouter([], [], lambda: NamespaceContext())
    with MidiInput(router, port, api="jack", clock=lambda: 480) as midi_in:
        time.sleep(0.2)                                # JACK connects the ports asynchronously
        out.send(mido.Message("start"))
        step = 60.0 / 100.0 / 24
        t0 = time.monotonic()
        for i in range(24 * 5):                        # five beats, on absolute deadlines
            delay = t0 + i * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.send(mido.Message("clock"))
        out.send(mido.Message("stop"))
        out.send(mido.Message("songpos", pos=32))     # the playhead to beat 8
        out.send(mido.Message("continue"))
        time.sleep(0.3)
        events = []
        while not midi_in.events.empty():
            events.append(midi_in.events.get_nowait())
    tempos = [e.args[0] for e in events if e.address == "/phosphene/tempo/bpm"]
    assert tempos, events
    assert tempos[-1] == pytest.approx(100.0, abs=0.5)
    assert events[0].address == "/phosphene/tempo/beat" and events[0].args == (0.0,)
    assert events[-1].address == "/phosphene/tempo/beat" and events[-1].args == (8.0,)
    assert router.ignored == 0                         # clock messages are not "unbound"
    assert all(e.origin == "midi" and e.sample_index == 480 for e in events)
    # the show takes them like Link's: the tempo override and the beat anchor
    preset, _ = load_preset("default")
    show = Show(preset, GeneratorFacts.from_generator(tiny_generator()), 48000)
    routes.perform(events, show)
    assert show.controls.params.target("tempo_bpm") == pytest.approx(100.0, abs=0.5)
    assert show.controls.beat_anchor is not None
