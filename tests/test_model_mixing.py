"""Model mixing (issue 14): a second checkpoint of the same architecture blended in per block.
Weight 0 renders exactly the show's model, 1 exactly the other; the blend weights are
parameters (OSC targets) that travel with the request, so a batch with different weights per
frame equals the frames one by one; a model of another architecture is one clear error."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

from phosphene.errors import PhospheneError
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.show.director import LatentRequest
from phosphene.live.show.mixing import Mix, block_resolutions
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.show import GeneratorFacts, Show
from phosphene.models.loading import save_generator
from live_engine_helpers import random_generator
from phosphene.models.stylegan2 import Generator, GeneratorConfig
from phosphene.models.stylegan2.mixing import ModelMixer

SR = 48000
CONFIG = dict(z_dim=16, w_dim=16, img_resolution=64, channel_base=256, channel_max=16,
              mapping_layers=2)


def tiny(seed: int, **changes) -> Generator:
    return random_generator(GeneratorConfig(**{**CONFIG, **changes}), seed,
                            noise_strength=0.3, bias_scale=0.2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model A (in memory, the show's) and B (a file, as a preset names it)."""
    folder = tmp_path_factory.mktemp("mix")
    A, B = tiny(1), tiny(2)
    save_generator(B, folder / "finetuned.safetensors")
    return A, B, folder


def preset(blend) -> object:
    return parse_preset(yaml.safe_load(f"""
name: mixed
keyframes: [{{seed: 1}}, {{seed: 2}}]
mix: {{model: finetuned.safetensors, blend: {blend}}}
"""))


def request_of(G, p, folder) -> LatentRequest:
    return Show(p, GeneratorFacts.from_generator(G), SR, base_dir=folder).state().request


def plain(request: LatentRequest) -> LatentRequest:
    return LatentRequest(sample_index=request.sample_index, w=request.w, w_raw=request.w_raw,
                         truncation_psi=request.truncation_psi,
                         noise_strength=request.noise_strength, noise_seed=request.noise_seed,
                         keyframe=request.keyframe)


def test_weight_zero_is_exactly_model_a_and_one_exactly_model_b(models):
    A, B, folder = models
    gen = FrameGenerator(copy.deepcopy(A), "cpu", max_batch=4)
    only_a, only_b = FrameGenerator(A, "cpu"), FrameGenerator(B, "cpu")
    zero = request_of(A, preset("{coarse: 0, middle: 0, fine: 0}"), folder)
    one = request_of(A, preset("{all: 1}"), folder)
    assert zero.mix == Mix(str(folder / "finetuned.safetensors"), (0.0,) * 5)
    assert one.mix.weights == (1.0,) * 5
    frame_a = only_a.generate(plain(zero))
    assert torch.equal(gen.generate(one), only_b.generate(plain(one)))
    assert torch.equal(gen.generate(zero), frame_a)           # back from B to A, exactly
    assert not torch.equal(frame_a, only_b.generate(plain(one)))
    # a request without a mix after mixed ones: the show's model as it was
    gen.generate(one)
    assert torch.equal(gen.generate(plain(zero)), frame_a)


def test_weights_per_group_and_per_block_blend_exactly_those_blocks(models):
    A, B, folder = models
    gen = FrameGenerator(copy.deepcopy(A), "cpu")
    request = request_of(A, preset("{all: 0.25, middle: 1, 64: 0}"), folder)
    assert block_resolutions(A.num_ws) == [4, 8, 16, 32, 64]
    assert request.mix.weights == (0.25, 0.25, 1.0, 1.0, 0.0)
    # the same blend written into a copy of A by hand
    by_hand = copy.deepcopy(A)
    b_params = dict(B.synthesis.named_parameters())
    with torch.no_grad():
        for block, weight in zip(by_hand.synthesis.blocks(), request.mix.weights):
            for name, p in block.named_parameters():
                p.copy_(torch.lerp(p, b_params[f"b{block.resolution}.{name}"], weight))
    expected = FrameGenerator(by_hand, "cpu").generate(plain(request))
    assert torch.equal(gen.generate(request), expected)


def test_mix_weights_are_parameters_and_osc_targets(models):
    A, _, folder = models
    p = preset("{coarse: 0, middle: 0.5, fine: 1}")
    specs = p.parameter_specs()
    assert {k: specs[k].default for k in specs if k.startswith("mix.")} == \
        {"mix.coarse": 0.0, "mix.middle": 0.5, "mix.fine": 1.0}
    context = routes.NamespaceContext(parameters=specs, effects=frozenset())
    assert routes.validate("/phosphene/param/mix.fine", [0.2], context)[1] == (0.2,)
    show = Show(p, GeneratorFacts.from_generator(A), SR, base_dir=folder)
    show.set_parameter("mix.fine", 0.2, immediate=True)
    show.advance(FeatureFrame.silent(512, SR))
    assert show.state().request.mix.weights == (0.0, 0.0, 0.5, 0.5, 0.2)


def test_a_batch_with_different_weights_equals_frames_one_by_one(models):
    A, _, folder = models
    gen = FrameGenerator(copy.deepcopy(A), "cpu", max_batch=4)
    base = request_of(A, preset("{all: 0}"), folder)
    requests = [LatentRequest(sample_index=i, w=base.w, w_raw=base.w_raw, truncation_psi=1.0,
                              noise_strength=0.5, noise_seed=i, keyframe=0,
                              mix=Mix(base.mix.model, (w,) * 5) if w is not None else None)
                for i, w in enumerate([0.0, 0.0, 0.7, None, 1.0, 1.0])]
    batched = gen.generate(requests)
    # (a batch of two and a batch of one run the convolutions in another order: last bits)
    for i, r in enumerate(requests):
        torch.testing.assert_close(batched[i:i + 1], gen.generate(r), atol=1e-5, rtol=0)
    assert torch.equal(batched[3:4], FrameGenerator(A, "cpu").generate(requests[3]))
    assert not torch.equal(batched[2], batched[3])


@pytest.mark.parametrize("changes,difference", [
    (dict(img_resolution=32), "img_resolution 64 vs 32"),
    (dict(channel_max=32), "channel_max 16 vs 32"),
    (dict(w_dim=8), "w_dim 16 vs 8"),
])
def test_another_architecture_is_a_clear_error(models, tmp_path, changes, difference):
    A, _, _ = models
    save_generator(tiny(5, **changes), tmp_path / "other.safetensors")
    with pytest.raises(PhospheneError) as info:
        FrameGenerator(A, "cpu").prepare(LatentRequest(
            sample_index=0, w=np.zeros((A.num_ws, A.w_dim), np.float32),
            w_raw=np.zeros((A.num_ws, A.w_dim), np.float32), truncation_psi=1.0,
            noise_strength=0.0, noise_seed=0, keyframe=0,
            mix=Mix(str(tmp_path / "other.safetensors"), (0.5,) * 5)))
    message = str(info.value)
    assert message.startswith("mix.model: cannot mix ") and "not the same architecture" in message
    assert difference in message


def test_the_mixer_names_a_parameter_shape_that_differs():
    A, B = tiny(1), tiny(2)
    B.synthesis.b8.conv0.weight = torch.nn.Parameter(torch.zeros(16, 16, 1, 1))
    with pytest.raises(PhospheneError, match=r"b8.conv0.weight has shape \[16, 16, 3, 3\] vs "
                                             r"\[16, 16, 1, 1\]"):
        ModelMixer(A, B, names=("a", "b"))


def test_a_missing_mix_model_is_said_at_start(models, tmp_path):
    A, _, _ = models
    p = parse_preset({"keyframes": [{"seed": 1}], "mix": {"model": "nowhere.pkl", "blend": 1}})
    with pytest.raises(PhospheneError) as info:
        FrameGenerator(A, "cpu").prepare(request_of(A, p, tmp_path))
    assert str(info.value).startswith(f"mix.model: {tmp_path / 'nowhere.pkl'}: no such file")


def test_the_compiled_live_synthesis_sees_the_mix(tmp_path):
    """The mix is written into the network's own parameters, so ``--compile`` (a compiled
    synthesis holding those tensors) renders the blend too, not a stale model A."""
    from phosphene.models.stylegan2.fast import compile_for_live

    A, B = tiny(1, img_resolution=8), tiny(2, img_resolution=8)
    save_generator(B, tmp_path / "finetuned.safetensors")
    G = copy.deepcopy(A)
    live = compile_for_live(G)
    if not live.compiled:
        pytest.skip(f"no compiled synthesis here: {live.reason}")
    gen = FrameGenerator(G, "cpu", synthesis=live)
    one = request_of(A, preset("{all: 1}"), tmp_path)
    half = request_of(A, preset("{all: 0.5}"), tmp_path)
    expected_b = FrameGenerator(B, "cpu").generate(plain(one))
    torch.testing.assert_close(gen.generate(one), expected_b, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gen.generate(plain(one)),
                               FrameGenerator(A, "cpu").generate(plain(one)), atol=1e-4, rtol=1e-4)
    assert (gen.generate(half) - expected_b).abs().max() > 1e-2


@pytest.mark.parametrize("mix,message", [
    ({"model": "b.pkl", "blnd": 1}, "mix.blnd: unknown key; allowed: model, blend"),
    ({"model": "b.pkl", "blend": {"fine": 2}}, "mix.blend: fine: the weight must be a number "
                                               "in 0..1, got 2"),
    ({"model": "b.pkl", "blend": {"coars": 1}}, "mix.blend: coars: not a blend key; allowed: "
                                                "all, coarse, middle, fine or a block resolution"),
    ({"model": "b.pkl", "blend": {"48": 1}}, "mix.blend: 48: not a blend key"),
])
def test_a_bad_mix_is_one_clear_error_naming_the_key(mix, message):
    with pytest.raises(PhospheneError) as info:
        parse_preset({"keyframes": [{"seed": 1}], "mix": mix})
    assert message in str(info.value)


def test_switching_to_another_mix_model_starts_from_the_shows_model(models):
    """A second mix model (another preset's) is blended into the show's own weights, not into
    the blend the first one left behind."""
    A, B, folder = models
    C = tiny(3)
    save_generator(C, folder / "other.safetensors")
    gen = FrameGenerator(copy.deepcopy(A), "cpu")
    half_b = request_of(A, preset("{all: 0.5}"), folder)
    gen.generate(half_b)
    to_c = LatentRequest(sample_index=0, w=half_b.w, w_raw=half_b.w_raw, truncation_psi=1.0,
                         noise_strength=0.5, noise_seed=4, keyframe=0,
                         mix=Mix(str(folder / "other.safetensors"), (0.0,) * 5))
    assert torch.equal(gen.generate(to_c), FrameGenerator(A, "cpu").generate(plain(to_c)))
    to_c = LatentRequest(**{**to_c.__dict__, "mix": Mix(to_c.mix.model, (1.0,) * 5)})
    assert torch.equal(gen.generate(to_c), FrameGenerator(C, "cpu").generate(plain(to_c)))
    assert torch.equal(gen.generate(plain(to_c)), FrameGenerator(A, "cpu").generate(plain(to_c)))
