"""MIDI on a real MIDI system: JACK's dummy driver, rtmidi ports on the JACK API."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import mido
import pytest

from phosphene.live.control.midi import MidiInput, MidiRouter, list_midi_ports, midi_backend, save_cc_binding
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.control.routes import NamespaceContext
from phosphene.live.show.show import GeneratorFacts, Show
from live_engine_helpers import tiny_generator
from phosphene.live.show.presets import load_preset, load_preset_file, resolve_preset

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def jack_server():
    """A private ``jackd -d dummy`` (no sound card needed), stopped afterwards."""
    name = f"phos-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name        # rtmidi's JACK clients connect to this one
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:                                  # ready once a client can connect
            try:
                midi_backend("jack").get_input_names()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jackd did not start: {proc.stdout.read().decode()[-500:]}")
                time.sleep(0.1)
        yield name
    finally:
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        proc.terminate()
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def preset_copy(tmp_path) -> Path:
    path = tmp_path / "mine.yaml"
    shutil.copy(resolve_preset("default"), path)
    return path


def context_for(preset) -> NamespaceContext:
    return NamespaceContext(parameters=preset.parameter_specs(),
                            effects=frozenset(preset.effect_names()))


def wait_events(midi_in: MidiInput, count: int) -> list:
    events, deadline = [], time.monotonic() + TIMEOUT_S
    while len(events) < count and time.monotonic() < deadline:
        try:
            events.append(midi_in.events.get(timeout=0.05))
        except Exception:
            pass
    return events


@pytest.fixture()
def controller(jack_server):
    """A virtual MIDI controller: an rtmidi output port on JACK."""
    port_name = f"knobs-{uuid.uuid4().hex[:6]}"
    out = midi_backend("jack").open_output(port_name, virtual=True)
    full = next(n for n in list_midi_ports("jack") if n.endswith(port_name))
    yield out, full
    out.close()


def test_cc_from_a_jack_port_moves_the_parameter(controller):
    out, port = controller
    preset, _ = load_preset("default")        # binds CC 1 -> psi (range 0..2)
    ctx = context_for(preset)
    router = MidiRouter.from_preset(preset, lambda: ctx)
    show = Show(preset, GeneratorFacts.from_generator(tiny_generator()), 48000)
    keyframe = show.state().request.keyframe
    with MidiInput(router, port, api="jack", clock=lambda: 960) as midi_in:
        time.sleep(0.2)                        # JACK connects the ports asynchronously
        out.send(mido.Message("control_change", channel=3, control=1, value=127))
        out.send(mido.Message("control_change", channel=3, control=99, value=5))   # unbound
        out.send(mido.Message("note_on", channel=0, note=36, velocity=100))       # -> next
        events = wait_events(midi_in, 2)
    assert [(e.address, e.args, e.sample_index, e.origin) for e in events] == [
        ("/phosphene/param/psi", (2.0,), 960, "midi"),
        ("/phosphene/keyframe/next", (), 960, "midi")]
    routes.perform(events, show)             # what the engine does with them
    assert show.controls.params.target("psi") == 2.0
    show.advance(FeatureFrame.silent(1024, 48000))
    assert show.state().request.keyframe == (keyframe + 1) % len(show.director.keyframes)
    assert router.ignored == 1


def test_midi_learn_binds_the_next_cc_and_saves_it_into_the_preset(controller, preset_copy):
    out, port = controller
    preset = load_preset_file(preset_copy)
    ctx = context_for(preset)
    router = MidiRouter.from_preset(preset, lambda: ctx,
                                    on_learn=lambda b: save_cc_binding(preset_copy, b))
    router.arm_learn("flash.amount")
    with MidiInput(router, port, api="jack") as midi_in:
        time.sleep(0.2)
        out.send(mido.Message("control_change", channel=2, control=21, value=127))
        out.send(mido.Message("control_change", channel=2, control=21, value=0))
        events = wait_events(midi_in, 2)
    assert [(e.address, e.args) for e in events] == [("/phosphene/param/flash.amount", (1.0,)),
                                                     ("/phosphene/param/flash.amount", (0.0,))]
    assert router.learning is None
    saved = load_preset_file(preset_copy)
    assert [(c.control, c.channel, c.target) for c in saved.midi.cc][-1] == (21, 2, "flash.amount")
    # the rest of the file is preserved: comments, other bindings, other sections
    text = preset_copy.read_text()
    assert text.startswith("# phosphene's default")
    assert saved.midi.cc[0].target == "psi" and saved.mappings == preset.mappings


def test_learning_the_same_control_again_replaces_the_binding(preset_copy):
    from phosphene.live.control.midi import CCBinding

    save_cc_binding(preset_copy, CCBinding(1, "noise", None))
    saved = load_preset_file(preset_copy)
    assert [(c.control, c.target) for c in saved.midi.cc] == [(7, "reactivity"), (1, "noise")]


def test_devices_list_shows_jack_ports(controller):
    _, port = controller
    assert port in list_midi_ports("jack")


def test_devices_listing_is_quiet_without_a_midi_system(tmp_path):
    """No ALSA sequencer and no JACK server: `phosphene devices` says so in one line, without
    the C libraries' chatter, and does not start a JACK server to find out."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("JACK_DEFAULT_SERVER", "DISPLAY")}
    env["JACK_DEFAULT_SERVER"] = f"phosphene-absent-{os.getpid()}"
    result = subprocess.run([sys.executable, "-m", "phosphene", "devices"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "MIDI inputs:" in result.stdout
    assert "jack server" not in text.lower()
    assert "ALSA lib" not in text
    assert subprocess.run(["pgrep", "-f", env["JACK_DEFAULT_SERVER"]],
                          capture_output=True).returncode != 0


def test_an_exception_in_the_midi_thread_restarts_it_and_midi_still_works(controller):
    """Fault injection: the routing thread fails once; it is restarted (counted) and the next
    CC still arrives."""
    from phosphene.supervision import Supervisor

    out, port = controller
    preset, _ = load_preset("default")
    ctx = context_for(preset)
    midi_in = MidiInput(MidiRouter.from_preset(preset, lambda: ctx), port, api="jack",
                        clock=lambda: 0)
    midi_in.supervisor = Supervisor()
    with midi_in:
        get = midi_in._incoming.get
        calls = {"n": 0}

        def failing_get(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:     # the routing thread's next wait fails
                raise RuntimeError("injected MIDI fault")
            return get(*args, **kwargs)

        midi_in._incoming.get = failing_get
        time.sleep(0.3)
        out.send(mido.Message("control_change", channel=0, control=1, value=64))
        first = wait_events(midi_in, 1)
        out.send(mido.Message("control_change", channel=0, control=1, value=127))
        second = wait_events(midi_in, 1)
    assert midi_in.supervisor.restarts == {"midi": 1}
    assert [e.args for e in first + second] == [(64 / 127 * 2.0,), (2.0,)]
