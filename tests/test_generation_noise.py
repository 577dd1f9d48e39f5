"""Noise as an explicit input of the synthesis network (issue 12).

The live and offline paths used to put each request's noise maps in place of every layer's
``noise_const`` buffer for the length of a call. Noise is now an argument (``noise=``), which a
captured CUDA graph can read from static buffers. These tests hold the new path to the old one
byte for byte: the buffer-swap path is kept here, as the reference, and fed the very requests
the shipped presets make over a clicky piece of audio.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from live_engine_helpers import random_generator, write_clicks
from phosphene.live.runtime.generation import FrameGenerator, noise_layers
from phosphene.live.runtime.offline import OfflineRender, RenderSettings
from phosphene.live.runtime.session import source_from_preset
from phosphene.models.stylegan2 import GeneratorConfig

PRESETS = sorted((Path(__file__).resolve().parents[1] / "presets").glob("*.yaml"))


def swap_buffers_reference(generator: FrameGenerator, requests) -> torch.Tensor:
    """Today's frames the way they were made before noise was an input: the maps go in place
    of the layers' ``noise_const`` buffers for the call, and come out again."""
    with torch.inference_mode():
        ws = generator.ws(requests)
        maps = generator._noise_maps(requests)
        if maps is None:
            return generator.G.synthesis(ws, noise_mode="none")
        originals = [layer.noise_const for layer in generator._layers]
        try:
            for layer, m in zip(generator._layers, maps):
                layer.noise_const = m
            return generator.G.synthesis(ws, noise_mode="const")
        finally:
            for layer, original in zip(generator._layers, originals):
                layer.noise_const = original


@pytest.fixture(scope="module")
def noisy_generator():
    config = GeneratorConfig(z_dim=32, w_dim=32, img_resolution=32, channel_base=256,
                             channel_max=32)
    return random_generator(config, seed=3, noise_strength=0.4, bias_scale=0.1)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_the_shipped_presets_render_byte_identical_frames_with_noise_as_an_input(
        tmp_path, noisy_generator, preset):
    audio = write_clicks(tmp_path / "clicks.wav", [0.3, 0.8, 1.1, 1.6, 2.2, 2.9], 3.5)
    job = OfflineRender(audio, source_from_preset(str(preset), None),
                        RenderSettings(size=(32, 32), fps=12, progress=False, batch=4),
                        generator=noisy_generator)
    requests = [state.request for _, state in job.states(0, job.n_frames)]
    # a preset with noise moves it (new seeds on onsets); the default preset has noise, the
    # notebook one none (then the frames still must not change)
    uses_noise = any(r.noise_strength > 0 for r in requests)
    assert uses_noise or preset.stem != "default"
    if uses_noise:
        assert len({r.noise_seed for r in requests}) >= 2
    layers_before = [layer.noise_const for layer in noise_layers(noisy_generator)]
    for start in range(0, len(requests), 4):       # offline batches: seeds mixed in a batch
        batch = requests[start:start + 4]
        got = job.generator.generate(batch)
        expected = swap_buffers_reference(job.generator, batch)
        assert torch.equal(got, expected), f"{preset.stem}: frames {start}.. differ"
    # the network's own buffers were never touched
    assert all(a is layer.noise_const
               for a, layer in zip(layers_before, noise_layers(noisy_generator)))


def test_noise_maps_change_the_frame_and_a_wrong_count_is_named(noisy_generator):
    G = noisy_generator
    ws = G.mapping.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1)
    layers = noise_layers(G)
    zeros = [torch.zeros(1, 1, m.resolution, m.resolution) for m in layers]
    ones = [torch.ones(1, 1, m.resolution, m.resolution) for m in layers]
    with torch.inference_mode():
        none = G.synthesis(ws, noise_mode="none")
        assert torch.equal(G.synthesis(ws, noise_mode="const", noise=zeros), none)
        assert not torch.equal(G.synthesis(ws, noise_mode="const", noise=ones), none)
        with pytest.raises(ValueError, match=f"one map per convolution \\({len(layers)}\\)"):
            G.synthesis(ws, noise_mode="const", noise=ones[:-1])
