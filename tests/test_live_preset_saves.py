"""Preset saves keep the live state (issue 11): a hot reload applies only what changed in the
file and keeps what the performer set live; MIDI learn's own save is no reload at all and
changes only the learned binding's lines; preset next/prev follow files, not ``name:``; no
spurious model warning.

The engine test runs the real thing: a headless run steered by liblo's ``oscsend``, a MIDI
controller on ``jackd -d dummy``, the preset file edited by hand while it plays, and the
recorded set replayed to the same values."""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import mido
import numpy as np
import pytest
import yaml

from live_engine_helpers import (SR, STAGE_PRESET, TIMEOUT_S, EngineRun, oscsend, tiny_generator,
                                 write_clicks, write_presets)
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.control.midi import CCBinding, list_midi_ports, midi_backend, save_cc_binding
from phosphene.live.runtime.actions import LiveActions
from phosphene.live.runtime.engine import EngineOptions
from phosphene.live.runtime.recording import read_recording
from phosphene.live.runtime.replay import LiveFrameReplay
from phosphene.live.runtime.report import ErrorLog
from phosphene.live.show.catalog import PresetCatalog
from phosphene.live.show.events import PRESET_EDITED, ControlEvent, EventSchedule
from phosphene.live.show.presets import (PresetWatcher, load_preset_file, parse_preset,
                                         resolve_preset)
from phosphene.live.show.show import GeneratorFacts, Show
from test_live_midi import jack_server  # noqa: F401 - the private jackd fixture

HOP = 256


@pytest.fixture(scope="module")
def facts():
    return GeneratorFacts.from_generator(tiny_generator())


def stage(text: str = STAGE_PRESET):
    return parse_preset(yaml.safe_load(text))


def frames(start: int, n: int):
    for i in range(start + 1, start + n + 1):
        level = (i % 50) / 50
        yield FeatureFrame(i * HOP, SR, -20.0, level, level, i % 40 == 0, level, 0.5 * level,
                           0.2, 1500.0, 0.1, 120.0, (i % 23) / 23, i % 23 == 0)


class Events:
    """A recorder stand-in: what the show writes."""

    def __init__(self):
        self.events = []

    def write_event(self, event, applied_at=None):
        self.events.append(event)


# -- the show's edit operation --------------------------------------------------------------------
def test_an_edit_applies_what_changed_and_keeps_what_the_performer_set(facts):
    recorder = Events()
    show = Show(stage(), facts, SR, recorder=recorder)
    live = [ControlEvent(0, "/phosphene/param/psi", (1.4,)),
            ControlEvent(0, "/phosphene/param/speed", (3.0,)),
            ControlEvent(0, "/phosphene/keyframe/goto", (2,)),
            ControlEvent(0, "/phosphene/effect/flash/enable", (0,))]
    routes.perform(live, show)
    for f in frames(0, 300):
        show.advance(f)
    before = show.state()
    keyframe_w = show.director.keyframe(2).copy()

    # unrelated keys and defaults: the touched psi keeps the performer's 1.4, the untouched
    # reactivity takes its new default, the mode setting applies; nothing fades
    text = (STAGE_PRESET.replace("  psi: {default: 0.7}",
                                 "  psi: {default: 0.3}\n  reactivity: {default: 2.5}")
            .replace("noise: {onset_amount: 0.5}", "noise: {onset_amount: 0.9}"))
    show.edit_preset(stage(text), 0.25)
    for f in frames(300, 100):
        state = show.advance(f)
    assert state.values["psi"] == pytest.approx(1.4, abs=1e-3)
    assert state.values["speed"] == pytest.approx(3.0, abs=1e-3)
    assert state.values["reactivity"] == pytest.approx(2.5, abs=0.02)     # gliding there
    assert state.request.keyframe == 2 and state.crossfade == 1.0
    assert state.effects_enabled["flash"] is False
    assert show.director.settings.noise.onset_amount == 0.9
    assert show.preset.parameters["reactivity"].default == 2.5
    assert before.preset_name == state.preset_name == "stage"

    # keyframes and the chain change: latents fade to the new keyframes from the same index,
    # the chain is the new one, the live values go on by name
    text = (text.replace("[{seed: 1}, {seed: 2}, {seed: 3}]",
                         "[{seed: 1}, {seed: 2}, {seed: 3}, {seed: 4}]")
            .replace("  - {name: flash}", "  - {name: color, params: {hue: 30}}\n  - {name: flash}"))
    show.edit_preset(stage(text), 0.25)
    assert show.state().crossfade == 0.0                  # the new keyframes fade in
    for f in frames(400, 60):
        state = show.advance(f)
    assert state.crossfade == 1.0 and state.request.keyframe == 2
    assert np.array_equal(show.director.keyframe(2), keyframe_w)
    assert len(show.director.keyframes) == 4
    assert state.effect_names == ("color", "flash")
    assert state.effects_enabled == {"color": True, "flash": False}
    assert state.values["color.hue"] == pytest.approx(30.0)
    assert (state.values["psi"], state.values["speed"], state.values["reactivity"]) == \
        pytest.approx((1.4, 3.0, 2.5), abs=0.01)

    # both edits are recorded; a replay of the events makes the same states
    edits = [e for e in recorder.events if e.address == PRESET_EDITED]
    assert [e.sample_index for e in edits] == [300 * HOP, 400 * HOP]
    replay = Show(stage(), facts, SR)
    schedule = EventSchedule(live + edits)
    routes.perform(schedule.due(1), replay)
    for f in frames(0, 460):
        routes.perform(schedule.due(f.sample_index), replay)
        again = replay.advance(f)
    assert dict(again.values) == dict(state.values)
    assert dict(again.effects_enabled) == dict(state.effects_enabled)
    assert np.array_equal(again.w, state.w) and again.request.keyframe == 2


def test_a_parameter_nobody_touched_follows_its_new_default(facts):
    show = Show(stage(), facts, SR)
    show.set_parameter("psi", 1.2)
    show.edit_preset(stage(STAGE_PRESET.replace("psi: {default: 0.7}", "psi: {default: 0.2}")
                           .replace("parameters:", "parameters:\n  noise: {default: 1.5}")))
    for f in frames(0, 400):
        state = show.advance(f)
    assert state.values["psi"] == pytest.approx(1.2, abs=1e-3)
    assert state.values["noise"] == pytest.approx(1.5, abs=1e-3)


# -- MIDI learn's save is no reload ----------------------------------------------------------------
def test_the_watcher_skips_phosphenes_own_save_and_picks_up_a_hand_edit(tmp_path):
    path = write_presets(tmp_path)
    watcher = PresetWatcher(path)
    save_cc_binding(path, CCBinding(21, "noise", 2), before_write=watcher.expect_own_save)
    os.utime(path, ns=(1, 2_000_000_000))
    assert watcher.poll() is None and watcher.error is None
    assert watcher.preset.midi.cc[-1].target == "noise"
    path.write_text(path.read_text() + "transition_ms: 100\n")
    os.utime(path, ns=(1, 3_000_000_000))
    assert watcher.poll().transition_ms == 100


# -- the preset file keeps its layout (defect 7) ----------------------------------------------------
HAND_WRITTEN = """\
# my set for the club
name: "club"   # shown in the overlay
keyframes: [{seed: 1}, {seed: 2}, {seed: 3}]    # three looks
parameters:
  psi: {default: 0.8, help: 'soft but not too soft'}
mappings:
  - {source: onset, target: flash.amount, gain: 0.6}   # the kick flashes
effects: [{name: "flash"}, {name: color, params: {hue: 30}}]
midi:
  cc:
    - {control: 1, target: psi}        # mod wheel
    - {control: 7, target: "noise"}    # the volume fader
  notes:
    - {note: 36, address: '/phosphene/keyframe/next'}   # pad 1
clips: {feed_analyzer: true, gain: 1.0}
"""

BLOCK_ITEMS = """\
name: blocks
keyframes:
- seed: 1
midi:
    cc:
    -   control: 1
        target: psi   # wheel
    notes: []
"""


def diff(a: str, b: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for line in difflib.ndiff(a.splitlines(keepends=True), b.splitlines(keepends=True)):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


@pytest.mark.parametrize("text, binding, removed, added", [
    (HAND_WRITTEN, CCBinding(21, "flash.amount", 2), [],
     ["    - {control: 21, channel: 2, target: flash.amount}\n"]),
    (HAND_WRITTEN, CCBinding(7, "psi", 0), ['    - {control: 7, target: "noise"}    # the volume fader\n'],
     ["    - {control: 7, channel: 0, target: psi}\n"]),
    (HAND_WRITTEN.replace("  cc:\n    - {control: 1, target: psi}        # mod wheel\n"
                          "    - {control: 7, target: \"noise\"}    # the volume fader\n", ""),
     CCBinding(3, "psi", 0), [], ["  cc:\n", "    - {control: 3, channel: 0, target: psi}\n"]),
    (HAND_WRITTEN.split("midi:\n")[0], CCBinding(3, "psi", None), [],
     ["midi:\n", "  cc:\n", "    - {control: 3, target: psi}\n"]),
    (BLOCK_ITEMS, CCBinding(9, "noise", 1), [],
     ["    -   control: 9\n", "        channel: 1\n", "        target: noise\n"]),
    (BLOCK_ITEMS, CCBinding(1, "noise", 1), ["        target: psi   # wheel\n"],
     ["        channel: 1\n", "        target: noise\n"]),     # (the control line stays)
    ("name: flow\nkeyframes: [{seed: 1}]\nmidi: \n  cc: [{control: 1, target: psi}]  # knobs\n",
     CCBinding(2, "noise", 0), ["  cc: [{control: 1, target: psi}]  # knobs\n"],
     ["  cc: [{control: 1, target: psi}, {control: 2, channel: 0, target: noise}]  # knobs\n"]),
])
def test_midi_learn_changes_only_the_learned_bindings_lines(tmp_path, text, binding, removed, added):
    path = tmp_path / "set.yaml"
    path.write_text(text)
    before = load_preset_file(path)
    save_cc_binding(path, binding)
    after = path.read_text()
    assert diff(text, after) == (removed, added), after
    data, new_data = yaml.safe_load(text), yaml.safe_load(after)
    cc = [e for e in (data.get("midi") or {}).get("cc", [])
          if not (e["control"] == binding.control and e.get("channel") in (None, binding.channel))]
    entry = {"control": binding.control, "target": binding.target}
    if binding.channel is not None:
        entry["channel"] = binding.channel
    assert new_data["midi"]["cc"] == cc + [entry]
    assert {k: v for k, v in new_data.items() if k != "midi"} == \
        {k: v for k, v in data.items() if k != "midi"}
    assert load_preset_file(path).midi.notes == before.midi.notes


def test_windows_line_endings_and_a_missing_last_newline_are_kept(tmp_path):
    text = HAND_WRITTEN.replace("\n", "\r\n").rstrip("\r\n")
    path = tmp_path / "set.yaml"
    path.write_bytes(text.encode())
    save_cc_binding(path, CCBinding(21, "psi", 2))
    after = path.read_bytes().decode()
    assert after.count("\r\n") == text.count("\r\n") + 1 and "\n" not in after.replace("\r\n", "")
    assert after.startswith(text[:text.index("\r\n  notes:")])
    assert "    - {control: 21, channel: 2, target: psi}\r\n" in after


# -- next/prev follow files (defect 8), the model warning (defect 12) -----------------------------------
def copies_of_default(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for stem in ("a_intro", "b_verse", "c_drop"):
        shutil.copy(resolve_preset("default"), folder / f"{stem}.yaml")   # all `name: default`
        paths.append(folder / f"{stem}.yaml")
    return paths


def actions_for(path: Path, facts, model_source="builtin:abstract") -> LiveActions:
    preset = load_preset_file(path)
    show = Show(preset, facts, SR, base_dir=path.parent)
    return LiveActions(show, preset, path, errors=ErrorLog(), model_source=model_source,
                       model_fixed=False)


def test_next_and_prev_follow_the_running_file_not_its_name(tmp_path, facts):
    a, b, c = copies_of_default(tmp_path / "set")
    assert load_preset_file(a).name == load_preset_file(b).name == "default"
    actions = actions_for(a, facts)
    visited = []
    for step in (+1, +1, -1, -1, -1):
        actions.step_preset(step)
        visited.append(actions.path.name)
    catalog = PresetCatalog(tmp_path / "set")
    assert visited == ["b_verse.yaml", "c_drop.yaml", "b_verse.yaml", "a_intro.yaml",
                       catalog.names()[-1] + ".yaml"]
    assert actions.switches == 5
    # a shipped preset is a place too; a file outside the catalog starts from the ends
    assert catalog.neighbour(resolve_preset(catalog.names()[-1]), +1) == "a_intro"
    assert catalog.neighbour(tmp_path / "elsewhere.yaml", +1) == "a_intro"
    assert catalog.neighbour(tmp_path / "elsewhere.yaml", -1) == catalog.names()[-1]


def test_switching_between_presets_of_the_running_model_does_not_warn(tmp_path, facts, caplog):
    a, b, _ = copies_of_default(tmp_path / "set")
    other_model = tmp_path / "set" / "d_other.yaml"
    other_model.write_text(a.read_text().replace("model: builtin:abstract", "model: other.pkl"))
    assert "model: other.pkl" in other_model.read_text()
    actions = actions_for(a, facts)
    with caplog.at_level(logging.WARNING, logger="phosphene.live.runtime.actions"):
        actions.load_preset("d_other")
        actions.load_preset("b_verse")       # the previous preset named other.pkl: no news
        actions.load_preset("a_intro")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["preset default names model other.pkl; the show keeps builtin:abstract"]


# -- the engine: live values survive MIDI learn and a hand edit -------------------------------------
@pytest.fixture()
def controller(jack_server):  # noqa: F811
    port_name = f"learn-{uuid.uuid4().hex[:6]}"
    out = midi_backend("jack").open_output(port_name, virtual=True)
    full = next(n for n in list_midi_ports("jack") if n.endswith(port_name))
    yield out, full
    out.close()


def wait_until(run: EngineRun, predicate, what: str, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert run.thread.is_alive(), f"the engine stopped before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_audio(run: EngineRun, seconds: float) -> None:
    target = run.engine.clock + seconds * SR
    wait_until(run, lambda: run.engine.clock >= target, f"{seconds} s of audio")


def edit(path: Path, old: str, new: str, stamp_s: int) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(stamp_s * 10**9, stamp_s * 10**9))   # a new stamp whatever the fs


def test_a_show_keeps_its_live_values_through_midi_learn_and_hand_edits(controller, tmp_path):
    out, port = controller
    preset = write_presets(tmp_path / "presets")
    wav = write_clicks(tmp_path / "clicks.wav", [0.5, 2.5, 4.5, 6.5], duration_s=20.0)
    G = tiny_generator()
    options = EngineOptions(preset=str(preset), audio_file=wav, output="none", headless=True,
                            osc_port=0, midi=port, midi_api="jack", record=tmp_path / "set")
    with EngineRun(options, generator=G) as run:
        engine = run.engine
        state = lambda: engine.state                         # noqa: E731

        def live_values_hold(noise=True):
            s = state()
            assert s.values["psi"] == pytest.approx(1.4, abs=1e-3)
            assert s.values["speed"] == pytest.approx(3.0, abs=1e-3)
            assert s.request.keyframe == 2
            assert s.effects_enabled["flash"] is False
            if noise:
                assert s.values["noise"] == pytest.approx(2.0, abs=1e-3)

        wait_audio(run, 0.2)
        oscsend(run.osc_port, "/phosphene/param/psi", "f", 1.4)
        oscsend(run.osc_port, "/phosphene/param/speed", "f", 3.0)
        oscsend(run.osc_port, "/phosphene/keyframe/goto", "i", 2)
        oscsend(run.osc_port, "/phosphene/effect/flash/enable", "i", 0)
        oscsend(run.osc_port, "/phosphene/midi/learn", "s", "noise")
        wait_until(run, lambda: engine.midi.router.learning == "noise", "MIDI learn armed")
        time.sleep(0.3)                                     # JACK connects asynchronously
        out.send(mido.Message("control_change", channel=4, control=21, value=127))
        wait_until(run, lambda: "control: 21" in preset.read_text(), "the learned binding saved")
        wait_audio(run, 1.5)                                # three polls of the preset file
        live_values_hold()
        edits = lambda: [e for e in read_recording(tmp_path / "set").events    # noqa: E731
                         if e.address == PRESET_EDITED]
        assert edits() == [] and engine.actions.switches == 0
        assert "    - {control: 21, channel: 4, target: noise}\n" in preset.read_text()

        # a hand edit of unrelated keys: applied, the live values stay (psi's new default too)
        edit(preset, "  psi: {default: 0.7}", "  psi: {default: 0.3}\n  reactivity: {default: 2.5}",
             2_000_000_000)
        wait_until(run, lambda: state().values["reactivity"] == pytest.approx(2.5, abs=1e-3),
                   "the edited default applied")
        live_values_hold()
        out.send(mido.Message("control_change", channel=4, control=21, value=0))   # still bound
        wait_until(run, lambda: state().values["noise"] < 0.01, "the learned CC still works")

        # keyframes and the chain change: they follow the file, the live values go on
        edit(preset, "  - {name: flash}", "  - {name: color, params: {hue: 30}}\n  - {name: flash}",
             2_000_000_100)
        wait_until(run, lambda: "color" in state().effect_names, "the new chain")
        live_values_hold(noise=False)
        assert state().values["color.hue"] == pytest.approx(30.0)
        assert len(edits()) == 2 and engine.actions.switches == 0
        wait_audio(run, 0.3)
        engine.stop()
        report = run.wait()
    assert report["errors"] == []
    frames = run.observed.frames

    # the recorded set replays to the same values at the same times
    replay = LiveFrameReplay(tmp_path / "set", generator=G)
    states = replay.states([f.state.sample_index for f in frames])
    for frame in frames:
        s, r = frame.state, states[frame.state.sample_index]
        assert dict(r.values) == dict(s.values), s.sample_index
        assert dict(r.effects_enabled) == dict(s.effects_enabled), s.sample_index
        assert r.effect_names == s.effect_names and r.request.keyframe == s.request.keyframe
        assert np.array_equal(r.w, s.w), s.sample_index
