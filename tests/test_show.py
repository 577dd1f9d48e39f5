"""The shared per-frame core: Show (preset + frames + events -> states, events applied through
the routes) and FrameGenerator (latent requests -> frames, with the director's noise), on a tiny
random StyleGAN2."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from offline_material import BUSY_PRESET, FLASH_PRESET
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.show.events import ControlEvent, EventSchedule
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.show import GeneratorFacts, Show
from phosphene.models.stylegan2 import Generator, GeneratorConfig

SR = 48000
HOP = 256


@pytest.fixture(scope="module")
def G():
    config = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, channel_base=64,
                             channel_max=16, mapping_layers=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        G = Generator(config).eval().requires_grad_(False)
        for m in G.synthesis.modules():       # trained networks have nonzero noise strengths
            if getattr(m, "use_noise", False):
                m.noise_strength.fill_(0.5)
    return G


def frames(n=200):
    """Feature frames with a level ramp and an onset every 40 hops."""
    out = []
    for i in range(1, n + 1):
        level = (i % 50) / 50
        out.append(FeatureFrame(i * HOP, SR, -20.0, level, level, i % 40 == 0, level, 0.5 * level,
                                0.2, 1500.0, 0.1, 120.0, (i % 23) / 23, i % 23 == 0))
    return out


def run(G, events=()):
    show = Show(parse_preset(yaml.safe_load(BUSY_PRESET)), GeneratorFacts.from_generator(G), SR)
    schedule = EventSchedule(events)
    states = []
    for f in frames():
        routes.perform(schedule.due(f.sample_index), show)
        states.append(show.advance(f))
    return states


def test_same_inputs_give_the_same_states_and_events_change_them(G):
    events = [ControlEvent(10_000, "/phosphene/param/psi", (1.5,)),
              ControlEvent(20_000, "/phosphene/keyframe/goto", (2,))]
    a, b = run(G, events), run(G, events)
    for x, y in zip(a, b):
        assert np.array_equal(x.w, y.w) and dict(x.values) == dict(y.values)
        assert x.noise_seed == y.noise_seed and dict(x.effect_params) == dict(y.effect_params)
    plain = run(G)
    first_after = next(i for i, s in enumerate(a) if s.sample_index > 10_000)
    assert a[first_after - 1].values["psi"] == plain[first_after - 1].values["psi"]
    assert a[first_after].values["psi"] > plain[first_after].values["psi"]
    after_goto = next(s for s in a if s.sample_index > 20_000)
    assert after_goto.request.keyframe == 2 and plain[a.index(after_goto)].request.keyframe != 2
    assert a[-1].noise_seed > 0            # onsets reseeded the noise


def test_state_is_read_only_and_carries_the_effect_chain(G):
    state = run(G)[-1]
    assert state.w.shape == (G.num_ws, G.w_dim) and state.w.dtype == np.float32
    with pytest.raises(ValueError):
        state.w[0, 0] = 1.0
    with pytest.raises(TypeError):
        state.effect_params["flash.amount"] = 1.0
    assert state.effect_names == ("feedback", "flash")
    assert set(state.effect_params) >= {"feedback.decay", "flash.amount"}
    assert dict(state.effects_enabled) == {"feedback": True, "flash": True}


class RecordingActions:
    """The engine's side of the ``action`` routes, as a list of what was asked for."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_routes_send_picture_events_to_the_show_and_the_rest_to_the_actions(G):
    show = Show(parse_preset(yaml.safe_load(BUSY_PRESET)), GeneratorFacts.from_generator(G), SR)
    actions = RecordingActions()
    events = [ControlEvent(0, "/phosphene/param/psi", (1.0,)),
              ControlEvent(0, "/phosphene/preset/load", ("other",)),
              ControlEvent(0, "/phosphene/clip/play", ("intro", 0.5)),
              ControlEvent(0, "/phosphene/status", ()),
              ControlEvent(0, "/phosphene/no/such/address", ())]
    routes.perform(events, show, actions)
    assert show.controls.params.target("psi") == 1.0
    assert actions.calls == [("load_preset", "other"), ("play_clip", "intro", 0.5, 0)]
    # offline (no actions) the same events only change the picture
    other = Show(parse_preset(yaml.safe_load(BUSY_PRESET)), GeneratorFacts.from_generator(G), SR)
    routes.perform(events, other)
    assert other.controls.params.target("psi") == 1.0


def test_every_route_has_a_handler_unless_the_server_answers_it():
    for route in routes.NAMESPACE + routes.RECORDED:
        assert (route.handler is None) == (route.scope == "reply"), route.pattern
        assert route.scope in ("show", "action", "replay", "reply")


def test_keyframe_tempo_and_mode_events_through_the_routes(G):
    show = Show(parse_preset(yaml.safe_load(BUSY_PRESET)), GeneratorFacts.from_generator(G), SR)
    n = len(show.director.keyframes)
    quiet = [FeatureFrame.silent(i * HOP, SR) for i in range(1, 41)]   # no onset steps
    routes.perform([ControlEvent(0, "/phosphene/keyframe/goto", (2,))], show)
    for f in quiet[:20]:
        show.advance(f)
    assert show.state().request.keyframe == 2
    routes.perform([ControlEvent(0, "/phosphene/keyframe/next", ())], show)
    for f in quiet[20:]:
        show.advance(f)
    assert show.state().request.keyframe == 3 % n
    routes.perform([ControlEvent(0, "/phosphene/keyframe/capture", ())], show)
    assert len(show.director.keyframes) == n + 1
    routes.perform([ControlEvent(0, "/phosphene/mode/drift", (0.7,)),
                    ControlEvent(0, "/phosphene/effect/flash/enable", (0,))], show)
    assert show.controls.params.target("mode.drift") == 0.7
    assert show.controls.effects_enabled["flash"] is False
    routes.perform([ControlEvent(i * SR // 2, "/phosphene/tempo/tap", ()) for i in range(3)], show)
    assert show.controls.params.get("tempo_bpm") == pytest.approx(120.0)


def test_switch_preset_crossfades_the_latents_and_switches_effects_at_once(G):
    facts = GeneratorFacts.from_generator(G)
    show = Show(parse_preset(yaml.safe_load(BUSY_PRESET)), facts, SR)
    other = parse_preset(yaml.safe_load(FLASH_PRESET))
    target = Show(other, facts, SR)
    fs = frames(120)
    for f in fs[:20]:
        show.advance(f)
    show.switch_preset(other, crossfade_s=0.5)
    assert show.state().effect_names == ("color", "flash")
    fades = []
    for f in fs[20:]:
        s = show.advance(f)
        fades.append(s.crossfade)
    assert fades[0] < 0.1 and fades[-1] == 1.0 and fades == sorted(fades)
    assert show.state().preset_name == "flash-test"


def test_frame_generator_noise_follows_seed_and_strength(G):
    gen = FrameGenerator(G, "cpu", max_batch=4)
    r = run(G)[-1].request
    quiet = dataclasses.replace(r, noise_strength=0.0)
    a = dataclasses.replace(r, noise_strength=1.0, noise_seed=1)
    b = dataclasses.replace(r, noise_strength=1.0, noise_seed=2)
    img = gen.generate([quiet, a, b, a])
    assert img.shape == (4, 3, 16, 16) and img.dtype == torch.float32
    assert torch.equal(img[1], img[3])                   # same seed, same noise
    assert (img[1] - img[2]).abs().max() > 1e-3          # another seed, another pattern
    assert (img[0] - img[1]).abs().max() > 1e-3          # strength 0: no noise
    with torch.inference_mode():
        plain = G.synthesis(torch.tensor(r.w)[None], noise_mode="none")
    assert torch.allclose(img[0], plain[0], atol=1e-5)
    # one at a time gives the same frames as the batch, and G's own noise buffers are untouched
    before = [m.noise_const.clone() for m in G.synthesis.modules() if hasattr(m, "noise_const")]
    assert torch.allclose(gen.generate(b)[0], img[2], atol=1e-5)
    after = [m.noise_const for m in G.synthesis.modules() if hasattr(m, "noise_const")]
    assert all(torch.equal(x, y) for x, y in zip(before, after))
    # a fresh generator draws the same pattern for a seed (runs are reproducible)
    assert torch.equal(FrameGenerator(G, "cpu").generate(a)[0], gen.generate(a)[0])
