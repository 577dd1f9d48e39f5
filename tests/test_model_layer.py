"""A second model crossfaded in before the effect chain (issue 14, ``layer:`` in presets).

Model A (the show's, 32 px, w_dim 16) and a layer model B of another architecture (64 px,
w_dim 24, z_dim 12, with noise). ``layer.fade`` 0 renders exactly the preset without the layer
and never runs B; 1 is B's own frame for the same seed (area-resized to 32 px); 0.5 the mean of
both. The fade is a parameter like any other (OSC, mappings); keyframe events move both
directors; a batched offline render equals the frames one by one (to the last bits a batch
changes) and draws through the effect chain.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from live_engine_helpers import random_generator, tiny_generator
from offline_material import write_clicks
from phosphene.errors import PhospheneError
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.runtime.session import _layer_facts
from phosphene.live.show.director import LatentRequest
from phosphene.live.show.events import ControlEvent
from phosphene.live.show.keyframes import SeedKeyframe, mapper_from_generator, resolve_keyframe
from phosphene.live.show.latents import truncate
from phosphene.live.show.layering import Layer, blend_layer
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.show import GeneratorFacts, Show
from phosphene.models.loading import save_generator
from phosphene.models.stylegan2 import Generator, GeneratorConfig

SR = 48000
PSI = 0.7
PRESET = """\
name: layered
keyframes: [{seed: 1}, {seed: 2}, {seed: 3}]
transition_ms: 0
modes:
  noise: {onset_amount: 0.0}
parameters:
  psi: {default: 0.7}
  noise: {default: 1.0}
"""


def other_generator() -> Generator:
    """Another architecture: 64 px, w_dim 24, z_dim 12, noise on (so the noise seeds matter)."""
    return random_generator(GeneratorConfig(z_dim=12, w_dim=24, img_resolution=64,
                                            channel_base=128, channel_max=32, mapping_layers=2),
                            5, noise_strength=0.3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layer")
    A, B = tiny_generator(0), other_generator()
    save_generator(B, folder / "other.safetensors")
    return A, B, folder


def preset(layer: str | None):
    text = PRESET if layer is None else PRESET + f"layer: {layer}\n"
    return parse_preset(yaml.safe_load(text))


def show_of(gen: FrameGenerator, p, folder) -> Show:
    facts = dataclasses.replace(GeneratorFacts.from_generator(gen.G),
                                layer_facts=lambda model: _layer_facts(gen, model))
    return Show(p, facts, SR, base_dir=folder)


def counting(gen: FrameGenerator, monkeypatch) -> list[int]:
    """Counts the frames ``gen``'s network renders."""
    calls = []
    forward = gen.G.synthesis.forward

    def counted(ws, **kwargs):
        calls.append(int(ws.shape[0]))
        return forward(ws, **kwargs)
    monkeypatch.setattr(gen.G.synthesis, "forward", counted)
    return calls


def b_frame(B, seed: int, noise_seed: int = 0) -> torch.Tensor:
    """B's own frame of a seed keyframe, straight from B (truncated at PSI around its w_avg),
    area-resized to 32 px."""
    w = resolve_keyframe(SeedKeyframe(seed), mapper=mapper_from_generator(B), z_dim=12,
                         num_ws=int(B.num_ws), w_dim=24)
    w = truncate(w, B.mapping.w_avg.numpy(), PSI)
    request = LatentRequest(sample_index=0, w=w, w_raw=w, truncation_psi=PSI,
                            noise_strength=1.0, noise_seed=noise_seed, keyframe=0)
    return F.interpolate(FrameGenerator(B, "cpu").generate(request), size=(32, 32), mode="area")


def test_fade_zero_is_byte_identical_and_never_runs_the_layer_model(models, monkeypatch):
    A, _, folder = models
    gen = FrameGenerator(A, "cpu", max_batch=4)
    plain = show_of(gen, preset(None), folder).state().request
    layered = show_of(gen, preset("{model: other.safetensors, fade: 0}"), folder)
    request = layered.state().request
    assert request.layer is not None and request.layer.fade == 0.0
    layer_calls = counting(gen.layer_generator(request.layer.model), monkeypatch)
    assert torch.equal(gen.generate(request), gen.generate(plain))
    assert torch.equal(gen.generate([request, request]), gen.generate([plain, plain]))
    assert layer_calls == []


def test_fade_one_is_the_layer_models_own_frame_and_skips_the_shows(models, monkeypatch):
    A, B, folder = models
    gen = FrameGenerator(A, "cpu")
    request = show_of(gen, preset("{model: other.safetensors, fade: 1}"), folder).state().request
    assert request.layer.w.shape == (B.num_ws, 24)
    own_calls = counting(gen, monkeypatch)
    frame = gen.generate(request)
    assert own_calls == []
    assert frame.shape == (1, 3, 32, 32)
    assert torch.equal(frame, b_frame(B, 1))


def test_half_way_is_the_mean_of_both_frames(models):
    A, B, folder = models
    gen = FrameGenerator(A, "cpu")
    plain = show_of(gen, preset(None), folder).state().request
    request = show_of(gen, preset("{model: other.safetensors, fade: 0.5}"), folder) \
        .state().request
    expected = (gen.generate(plain) + b_frame(B, 1)) / 2
    assert torch.allclose(gen.generate(request), expected, atol=1e-6)


def test_a_smaller_layer_model_is_resized_bilinearly(models):
    """The other way round: B shows, A (32 px) is the layer, upscaled to 64 px bilinearly."""
    A, B, folder = models
    save_generator(A, folder / "small.safetensors")
    gen = FrameGenerator(B, "cpu")
    p = preset("{model: small.safetensors, fade: 1}")
    request = show_of(gen, p, folder).state().request
    small = FrameGenerator(tiny_generator(0), "cpu").generate(
        show_of(FrameGenerator(tiny_generator(0), "cpu"), preset(None), folder).state().request)
    expected = F.interpolate(small, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.equal(gen.generate(request), expected)


def test_layer_fade_is_a_parameter_osc_and_mappings_reach(models):
    A, _, folder = models
    p = parse_preset(yaml.safe_load(PRESET + """\
layer: {model: other.safetensors, fade: 0.25}
mappings:
  - {source: level, target: layer.fade, gain: 1}
"""))
    specs = p.parameter_specs()
    assert (specs["layer.fade"].minimum, specs["layer.fade"].maximum,
            specs["layer.fade"].default) == (0.0, 1.0, 0.25)
    context = routes.NamespaceContext(parameters=specs, effects=frozenset())
    assert routes.validate("/phosphene/param/layer.fade", [0.8], context)[1] == (0.8,)
    no_layer = routes.NamespaceContext(parameters=preset(None).parameter_specs(),
                                       effects=frozenset())
    with pytest.raises(routes.Rejected):
        routes.validate("/phosphene/param/layer.fade", [0.8], no_layer)
    show = show_of(FrameGenerator(A, "cpu"), p, folder)
    assert show.state().request.layer.fade == 0.25
    show.set_parameter("layer.fade", 0.8, immediate=True)
    show.advance(FeatureFrame.silent(512, SR))
    assert show.state().request.layer.fade == pytest.approx(0.8)


def test_keyframe_events_move_both_models(models):
    A, B, folder = models
    gen = FrameGenerator(A, "cpu")
    show = show_of(gen, preset("{model: other.safetensors, fade: 1}"), folder)
    show.advance(FeatureFrame.silent(512, SR))
    routes.perform([ControlEvent(512, "/phosphene/keyframe/next", ())], show)
    state = show.advance(FeatureFrame.silent(1024, SR))
    assert (state.request.keyframe, state.request.layer.keyframe) == (1, 1)
    assert torch.equal(gen.generate(state.request), b_frame(B, 2))
    routes.perform([ControlEvent(1024, "/phosphene/keyframe/goto", (2,))], show)
    state = show.advance(FeatureFrame.silent(1536, SR))
    assert (state.request.keyframe, state.request.layer.keyframe) == (2, 2)
    assert torch.equal(gen.generate(state.request), b_frame(B, 3))


def test_the_layer_can_have_its_own_keyframes(models):
    A, B, folder = models
    gen = FrameGenerator(A, "cpu")
    request = show_of(gen, preset("{model: other.safetensors, fade: 1, keyframes: [{seed: 9}]}"),
                      folder).state().request
    assert torch.equal(gen.generate(request), b_frame(B, 9))


def test_a_batch_with_different_fades_equals_frames_one_by_one(models):
    A, _, folder = models
    gen = FrameGenerator(A, "cpu", max_batch=8)
    base = show_of(gen, preset("{model: other.safetensors}"), folder).state().request
    requests = [dataclasses.replace(base, layer=dataclasses.replace(base.layer, fade=f))
                for f in (0.0, 0.3, 1.0, 0.0, 0.7)]
    alone = torch.cat([gen.generate(r) for r in requests])
    # (a batch and single frames run the convolutions in another order: the last bits)
    torch.testing.assert_close(gen.generate(requests), alone, atol=1e-5, rtol=0)
    assert torch.equal(gen.generate(requests), gen.generate(requests))
    assert not torch.equal(alone[0], alone[1]) and not torch.equal(alone[1], alone[2])


def test_a_layer_model_that_cannot_load_is_one_clear_error(models):
    A, _, folder = models
    gen = FrameGenerator(A, "cpu")
    with pytest.raises(PhospheneError, match=r"layer\.model: .*nothere\.pkl"):
        show_of(gen, preset("{model: nothere.pkl}"), folder)
    facts = GeneratorFacts.from_generator(A)      # no loader: the show says so
    with pytest.raises(PhospheneError, match="layer: this show cannot load a second model"):
        Show(preset("{model: other.safetensors}"), facts, SR, base_dir=folder)


def test_a_saved_w_that_does_not_fit_the_layer_model_is_named(models, tmp_path):
    A, _, folder = models
    np.save(tmp_path / "kf.npy", np.zeros(16, np.float32))      # A's w_dim, not B's
    (tmp_path / "other.safetensors").symlink_to(folder / "other.safetensors")
    p = parse_preset(yaml.safe_load(PRESET.replace("[{seed: 1}, {seed: 2}, {seed: 3}]",
                                                   "[{w: kf.npy}]")
                                    + "layer: {model: other.safetensors}\n"))
    with pytest.raises(PhospheneError, match=r"layer\.keyframes .*kf\.npy"):
        show_of(FrameGenerator(A, "cpu"), p, tmp_path)


def test_a_preset_crossfade_fades_a_layer_in_and_hands_over_between_models():
    w = np.zeros((4, 8), np.float32)
    a = Layer("a.pkl", 1.0, w, 0.7, 0.0, 0, 0)
    b = Layer("b.pkl", 0.8, w + 1, 0.7, 0.0, 0, 0)
    assert blend_layer(None, a, 0.25).fade == 0.25 and blend_layer(a, None, 0.25).fade == 0.75
    assert blend_layer(a, b, 0.25).model == "a.pkl" and blend_layer(a, b, 0.25).fade == 0.5
    assert blend_layer(a, b, 0.75).model == "b.pkl" and blend_layer(a, b, 0.75).fade == 0.4
    same = blend_layer(a, dataclasses.replace(b, model="a.pkl"), 0.5)
    assert same.fade == pytest.approx(0.9) and np.allclose(same.w, 0.5)


def test_an_offline_render_with_a_mapped_fade_is_batched_exactly(models, tmp_path):
    """An onset-mapped fade over a click file: the batched render's frames equal the same
    states rendered one by one; the fade moves (0 between clicks, above 0 on them)."""
    from phosphene.live.runtime.offline import OfflineRender, RenderSettings
    from phosphene.live.runtime.session import source_from_preset

    A, _, folder = models
    (tmp_path / "other.safetensors").symlink_to(folder / "other.safetensors")
    (tmp_path / "layered.yaml").write_text(PRESET + """\
output: {width: 32, height: 32, fps: 12}
layer: {model: other.safetensors, fade: 0}
mappings:
  - {source: onset, target: layer.fade, gain: 1.0, release_ms: 200}
effects:
  - {name: color, params: {saturation: 1.2}}
""")
    audio = write_clicks(tmp_path / "clicks.wav", times=(0.3, 0.7), duration_s=1.0)
    settings = RenderSettings(size=(32, 32), fps=12, progress=False, batch=4)
    job = OfflineRender(audio, source_from_preset(str(tmp_path / "layered.yaml")), settings,
                        generator=tiny_generator(0))
    states = [state for _, state in job.states(0, job.n_frames)]
    fades = [s.request.layer.fade for s in states]
    assert fades[0] == 0.0 and max(fades) > 0.5
    batched = torch.cat([job.generator.generate([s.request for s in states[i:i + 4]])
                         for i in range(0, len(states), 4)])
    alone = torch.cat([job.generator.generate(s.request) for s in states])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    # the fade showed: frames under the layer differ from the preset's model alone
    shown = [i for i, f in enumerate(fades) if f > 0.5]
    without = job.generator.generate([dataclasses.replace(states[i].request, layer=None)
                                      for i in shown])
    assert (batched[shown] - without).abs().max() > 1e-2
    pixels = [np.array(p, copy=True) for p in OfflineRender(
        audio, source_from_preset(str(tmp_path / "layered.yaml")), settings,
        generator=tiny_generator(0)).frames()]
    assert len(pixels) == job.n_frames and pixels[0].shape == (32, 32, 3)
    assert len({p.tobytes() for p in pixels}) > 1


def test_the_live_engine_crossfades_the_layer_in_through_its_worker(models, tmp_path):
    """A headless live run from a click file: the session loads the layer model with the
    preset, the generator worker renders the blend whenever an onset raises the fade, and no
    frame fails."""
    from live_engine_helpers import EngineRun
    from phosphene.live.runtime.engine import EngineOptions

    _, _, folder = models
    (tmp_path / "other.safetensors").symlink_to(folder / "other.safetensors")
    (tmp_path / "live.yaml").write_text(PRESET + """\
output: {width: 32, height: 32, fps: 20}
layer: {model: other.safetensors, fade: 0}
mappings:
  - {source: onset, target: layer.fade, gain: 1.0, release_ms: 400}
""")
    wav = write_clicks(tmp_path / "clicks.wav", times=(0.4, 1.0), duration_s=2.0)
    options = EngineOptions(preset=str(tmp_path / "live.yaml"), audio_file=wav, output="none",
                            headless=True, osc_port=None)
    with EngineRun(options, generator=tiny_generator(0)) as run:
        layers = run.engine.session.generator._layer_generators
        assert list(layers) == [str(tmp_path / "other.safetensors")]     # loaded at start
        calls = []
        layer = next(iter(layers.values()))
        forward = layer.G.synthesis.forward
        layer.G.synthesis.forward = lambda ws, **kw: calls.append(1) or forward(ws, **kw)
        report = run.wait()
    assert report["frames"]["generator_errors"] == 0 and report["frames"]["generated"] > 0
    fades = [f.state.request.layer.fade for f in run.observed.frames]
    assert fades[0] == 0.0 and max(fades) > 0.5
    assert calls          # the worker rendered the layer model while the fade was up


def test_a_layer_preset_round_trips_and_fades_in_with_a_preset_switch(models):
    from phosphene.live.show.show import preset_to_yaml

    A, _, folder = models
    p = preset("{model: other.safetensors, fade: 0.8, keyframes: [{seed: 4}]}")
    assert parse_preset(yaml.safe_load(preset_to_yaml(p))) == p
    show = show_of(FrameGenerator(A, "cpu"), preset(None), folder)
    show.switch_preset(p, 1.0, base_dir=folder)
    assert show.state().request.layer.fade == 0.0           # the switch starts from the old
    state = show.advance(FeatureFrame.silent(SR // 2, SR))   # half-way (cosine-eased)
    assert state.request.layer.fade == pytest.approx(0.4)
    state = show.advance(FeatureFrame.silent(SR * 2, SR))
    assert state.request.layer.fade == pytest.approx(0.8)


def test_an_edit_of_the_preset_keeps_the_two_directors_in_step(models):
    A, B, folder = models
    gen = FrameGenerator(A, "cpu")
    show = show_of(gen, preset("{model: other.safetensors, fade: 1}"), folder)
    show.step_keyframe(1)
    layer_director = show._running.layer_director
    # the fade's default changed only: both directors go on as they were
    show.edit_preset(preset("{model: other.safetensors, fade: 0.9}"))
    assert show._running.layer_director is layer_director
    # the preset's keyframes changed: a new layer director starts at the same keyframe
    edited = parse_preset(yaml.safe_load(PRESET.replace("{seed: 3}", "{seed: 3}, {seed: 4}")
                                         + "layer: {model: other.safetensors, fade: 1}\n"))
    show.edit_preset(edited)
    assert show._running.layer_director is not layer_director
    state = show.advance(FeatureFrame.silent(SR, SR))
    assert (state.request.keyframe, state.request.layer.keyframe) == (1, 1)
    assert torch.equal(gen.generate(state.request), b_frame(B, 2))
