"""Performer safety in the pure core: blackout, freeze and panic as show operations reached
through the routes (so a replay does them again), and their live side on the Actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from offline_material import BUSY_PRESET
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.show.events import ControlEvent, EventSchedule
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.safety import BLACKOUT_IN_S, BLACKOUT_OUT_S, OUTPUT_FADE
from phosphene.live.show.show import GeneratorFacts, Show
from phosphene.models.stylegan2 import Generator, GeneratorConfig

SR = 48000
HOP = 256
HOPS_PER_S = SR / HOP


@pytest.fixture(scope="module")
def facts():
    config = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, channel_base=64,
                             channel_max=16, mapping_layers=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        G = Generator(config).eval().requires_grad_(False)
    return GeneratorFacts.from_generator(G)


def frame(i: int) -> FeatureFrame:
    """Hop ``i``: a moving level and an onset every 20 hops, so the picture keeps moving."""
    level = 0.5 + 0.5 * np.sin(i / 7.0)
    return FeatureFrame(i * HOP, SR, -20.0, level, level, i % 20 == 0, level, 0.5 * level, 0.2,
                        1500.0, 0.1, 120.0, (i % 23) / 23, i % 23 == 0)


class Played:
    """A show stepped hop by hop with events at given hops (through the routes)."""

    def __init__(self, facts, actions=None, preset: str = BUSY_PRESET):
        self.show = Show(parse_preset(yaml.safe_load(preset)), facts, SR)
        self.actions = actions
        self.hop = 0

    def send(self, address: str, *args) -> None:
        routes.perform([ControlEvent(self.hop * HOP, address, tuple(args))], self.show,
                       self.actions)

    def play(self, seconds: float) -> list:
        states = []
        for _ in range(round(seconds * HOPS_PER_S)):
            self.hop += 1
            states.append(self.show.advance(frame(self.hop)))
        return states


class RecordingActions:
    def __init__(self, show=None):
        self.show = show
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_blackout_fades_to_black_quickly_and_back_gently_while_the_show_goes_on(facts):
    p = Played(facts)
    before = p.play(0.2)[-1]
    assert before.blackout == 0.0 and before.effect_params[OUTPUT_FADE] == 0.0
    p.send("/phosphene/blackout", 1)
    going = p.play(BLACKOUT_OUT_S + 0.02)
    levels = [s.blackout for s in going]
    assert levels == sorted(levels) and 0.0 < levels[0] < 0.2 and levels[-1] == 1.0
    assert all(s.effect_params[OUTPUT_FADE] == pytest.approx(s.blackout) for s in going)
    black = p.play(0.5)
    assert all(s.effect_params[OUTPUT_FADE] == 1.0 for s in black)
    # underneath, the latents go on moving with the music
    assert not np.array_equal(black[0].w, black[-1].w)
    assert p.show.blacked_out

    p.send("/phosphene/blackout", 0)
    back = p.play(BLACKOUT_IN_S / 2)
    assert 0.4 < back[-1].blackout < 0.6          # half way after half the fade-in time
    back += p.play(BLACKOUT_IN_S / 2 + 0.02)
    assert back[-1].blackout == 0.0 and back[-1].effect_params[OUTPUT_FADE] == 0.0
    assert not p.show.blacked_out


def test_blackout_and_freeze_without_an_argument_toggle(facts):
    p = Played(facts)
    p.send("/phosphene/blackout")
    assert p.play(0.3)[-1].blackout == 1.0
    p.send("/phosphene/blackout")
    assert p.play(1.1)[-1].blackout == 0.0
    p.send("/phosphene/freeze")
    assert p.play(0.1)[-1].frozen
    p.send("/phosphene/freeze")
    assert not p.play(0.1)[-1].frozen


def test_the_blackout_combines_with_the_presets_own_output_fade(facts):
    preset = BUSY_PRESET.replace("  - {name: flash}\n",
                                 "  - {name: flash}\n  - {name: output, params: {fade: 0.5}}\n")
    p = Played(facts, preset=preset)
    assert p.play(0.1)[-1].effect_params[OUTPUT_FADE] == pytest.approx(0.5)
    p.send("/phosphene/blackout", 1)
    assert p.play(0.3)[-1].effect_params[OUTPUT_FADE] == 1.0
    p.send("/phosphene/blackout", 0)
    assert p.play(1.1)[-1].effect_params[OUTPUT_FADE] == pytest.approx(0.5)


def test_freeze_holds_the_picture_while_the_show_goes_on_and_resumes_live(facts):
    p = Played(facts)
    live = p.play(0.3)[-1]
    p.send("/phosphene/freeze", 1)
    held = p.play(0.5)
    first = held[0]
    assert first.frozen and first.request is live.request    # held from the state on screen
    for s in held:
        # the same picture: the request object itself (the generator is not asked again), the
        # same effect values and switches; the clock goes on
        assert s.request is live.request
        assert dict(s.effect_params) == dict(live.effect_params)
        assert dict(s.effects_enabled) == dict(live.effects_enabled)
    assert [s.sample_index for s in held] == sorted({s.sample_index for s in held})
    # a blackout still acts on a held picture
    p.send("/phosphene/blackout", 1)
    dark = p.play(0.3)[-1]
    assert dark.frozen and dark.request is live.request and dark.blackout == 1.0
    p.send("/phosphene/blackout", 0)
    p.play(1.1)

    p.send("/phosphene/freeze", 0)
    resumed = p.play(0.05)[-1]
    assert not resumed.frozen and resumed.request is not live.request
    # the live state moved on underneath: it is not the held one
    assert not np.array_equal(resumed.w, live.w)


def test_panic_is_black_at_once_and_resets_the_effects_to_the_preset(facts):
    p = Played(facts)
    p.send("/phosphene/effect/feedback/decay", 0.95)
    p.send("/phosphene/effect/flash/enable", 0)
    p.send("/phosphene/param/psi", 1.5)
    p.play(0.3)
    p.send("/phosphene/freeze", 1)
    p.play(0.1)
    p.send("/phosphene/panic")
    after = p.play(1.0 / HOPS_PER_S)[-1]          # the very next hop
    assert after.blackout == 1.0 and after.effect_params[OUTPUT_FADE] == 1.0
    assert not after.frozen
    params = p.show.controls.params
    assert params.target("feedback.decay") == pytest.approx(0.5)    # the preset's value
    assert after.effects_enabled["flash"] is True
    assert params.target("psi") == 1.5                              # not an effect: kept
    p.send("/phosphene/blackout", 0)                                # b brings it back
    assert p.play(1.1)[-1].blackout == 0.0


def test_the_live_side_goes_to_the_actions_and_a_replay_does_the_show_side_only(facts):
    p = Played(facts)
    actions = RecordingActions(p.show)
    p.actions = actions
    p.send("/phosphene/blackout", 1)
    p.send("/phosphene/blackout")
    p.send("/phosphene/panic")
    p.send("/phosphene/freeze", 1)
    assert actions.calls == [("blackout", True), ("blackout", None), ("panic",)]

    # a recorded set with safety events gives the same states again (no actions: a replay)
    events = [ControlEvent(40 * HOP, "/phosphene/blackout", ()),
              ControlEvent(120 * HOP, "/phosphene/freeze", (1,)),
              ControlEvent(160 * HOP, "/phosphene/blackout", (0,)),
              ControlEvent(300 * HOP, "/phosphene/freeze", (0,)),
              ControlEvent(350 * HOP, "/phosphene/panic", ())]

    def replay():
        show = Show(parse_preset(yaml.safe_load(BUSY_PRESET)), facts, SR)
        schedule = EventSchedule(events)
        out = []
        for i in range(1, 400):
            routes.perform(schedule.due(i * HOP), show)
            s = show.advance(frame(i))
            out.append((s.blackout, s.frozen, s.effect_params[OUTPUT_FADE], s.w.tobytes()))
        return out

    a, b = replay(), replay()
    assert a == b
    assert {x[1] for x in a} == {True, False} and max(x[0] for x in a) == 1.0


def test_the_safety_routes_validate_and_toggle():
    context = routes.NamespaceContext()
    for address in ("/phosphene/blackout", "/phosphene/freeze"):
        assert routes.validate(address, [], context)[1] == ()
        assert routes.validate(address, [1], context)[1] == (1,)
        with pytest.raises(routes.Rejected):
            routes.validate(address, [2], context)
    assert routes.validate("/phosphene/panic", [], context)[1] == ()
    with pytest.raises(routes.Rejected):
        routes.validate("/phosphene/panic", [1], context)
