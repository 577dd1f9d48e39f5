"""Every checkpoint format loads back to the same numbers as the weights run through our module.

Tiny random generators are written in each source project's layout (tests/loading_formats.py)
and loaded with ``load_generator``; outputs are compared with the original module's outputs
(with truncation too, so that w_avg / dlatent_avg / latent_avg must land in the right place).
"""

from __future__ import annotations

import pytest
import torch

from loading_formats import (sample_inputs, tiny_generator, write_nvlabs_pickle,
                             write_rosinality_converted, write_rosinality_train_snapshot,
                             write_tf_pickle)
from phosphene.models.loading import describe, load_generator, save_generator


def assert_same_outputs(loaded, reference, psi=(1.0, 0.6), cutoff=None):
    z, c = sample_inputs(reference)
    assert loaded.config == reference.config
    for truncation_psi in psi:
        expected = reference(z, c, truncation_psi=truncation_psi, truncation_cutoff=cutoff,
                             noise_mode="const")
        actual = loaded(z, c, truncation_psi=truncation_psi, truncation_cutoff=cutoff,
                        noise_mode="const")
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def assert_different_outputs(loaded, other):
    z, c = sample_inputs(other)
    assert not torch.allclose(loaded(z, c, noise_mode="const"), other(z, c, noise_mode="const"),
                              atol=1e-3)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "MODULE_SRC_WAS_EXECUTED"
    yield path
    assert not path.exists(), "code embedded in the checkpoint was executed"


@pytest.mark.parametrize("c_dim", [0, 4])
@pytest.mark.parametrize("protocol,numpy_major,style", [
    (4, 2, "ada"),   # stylegan2-ada-pytorch under numpy 2.x
    (2, 1, "ada"),   # ... an older pickle written under numpy 1.x (text GLOBAL opcodes)
    (4, 2, "sg3"),   # stylegan3 repo's StyleGAN2: synthesis kwargs at the top level
])
def test_nvlabs_pickle_loads_g_ema(tmp_path, marker, c_dim, protocol, numpy_major, style):
    G_ema = tiny_generator(seed=1, c_dim=c_dim, conv_clamp=256.0)
    G = tiny_generator(seed=2, c_dim=c_dim, conv_clamp=256.0)
    path = tmp_path / "network-snapshot-000100.pkl"
    write_nvlabs_pickle(path, G_ema, G, marker, protocol=protocol, style=style,
                        numpy_major=numpy_major)
    loaded = load_generator(path)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert_same_outputs(loaded, G_ema)
    assert_same_outputs(loaded, G_ema, psi=(0.5,), cutoff=2)
    assert_different_outputs(loaded, G)  # G_ema, not G


def test_nvlabs_pickle_without_g_ema_falls_back_to_g_with_a_note(tmp_path, marker):
    G = tiny_generator(seed=3)
    path = tmp_path / "only-G.pkl"
    write_nvlabs_pickle(path, None, G, marker)
    assert_same_outputs(load_generator(path), G)
    info = describe(path)
    assert info["format"] == "nvlabs-pickle"
    assert any("no G_ema" in note for note in info["notes"])


@pytest.mark.parametrize("c_dim", [0, 3])
@pytest.mark.parametrize("protocol,numpy_major", [(3, 1), (4, 2)])
def test_tf_pickle_converts_gs(tmp_path, marker, c_dim, protocol, numpy_major):
    Gs = tiny_generator(seed=4, c_dim=c_dim, img_resolution=32, channel_base=512)
    G = tiny_generator(seed=5, c_dim=c_dim, img_resolution=32, channel_base=512)
    path = tmp_path / "stylegan2-tiny-config-f.pkl"
    write_tf_pickle(path, Gs, G, marker, protocol=protocol, numpy_major=numpy_major)
    loaded = load_generator(path)
    assert_same_outputs(loaded, Gs)
    assert_different_outputs(loaded, G)
    assert describe(path)["format"] == "tf-stylegan2-pickle"


def test_rosinality_converted_checkpoint(tmp_path):
    G = tiny_generator(seed=6)
    path = tmp_path / "stylegan2-tiny.pt"
    write_rosinality_converted(path, G)
    assert_same_outputs(load_generator(path), G)


def test_rosinality_train_snapshot_uses_g_ema_and_estimates_w_avg(tmp_path):
    g_ema, g = tiny_generator(seed=7), tiny_generator(seed=8)
    path = tmp_path / "100000.pt"
    write_rosinality_train_snapshot(path, g_ema, g)
    loaded = load_generator(path)
    # Without truncation the output does not depend on w_avg: it must match exactly.
    assert_same_outputs(loaded, g_ema, psi=(1.0,))
    assert_different_outputs(loaded, g)
    # No latent_avg in a train.py snapshot: w_avg is estimated as the mean of mapped z.
    z = torch.randn([20000, g_ema.z_dim], generator=torch.Generator().manual_seed(99))
    w_mean = g_ema.mapping(z, None)[:, 0].mean(dim=0)
    spread = g_ema.mapping(z, None)[:, 0].std(dim=0)
    assert torch.all((loaded.mapping.w_avg - w_mean).abs() < 0.05 * spread + 1e-4)
    info = describe(path)
    assert info["format"] == "rosinality-pt"
    assert any("latent_avg" in note for note in info["notes"])


def test_rosinality_channel_layout_is_inferred_for_config_f_style_channels(tmp_path):
    # rosinality's channel table: 512 up to 32 px, then 256*cm, 128*cm, ... (here scaled down)
    G = tiny_generator(seed=9, img_resolution=32, channel_base=128 * 8, channel_max=64)
    path = tmp_path / "scaled.pt"
    write_rosinality_converted(path, G)
    loaded = load_generator(path)
    assert [loaded.config.channels_at(r) for r in (4, 8, 16, 32)] == [64, 64, 64, 32]
    assert_same_outputs(loaded, G)


@pytest.mark.parametrize("c_dim", [0, 5])
def test_safetensors_round_trip_keeps_config_and_source(tmp_path, c_dim):
    G = tiny_generator(seed=10, c_dim=c_dim, conv_clamp=128.0, mapping_lr_multiplier=0.02)
    path = tmp_path / "tiny.safetensors"
    save_generator(G, path, source="unit test")
    loaded = load_generator(path)
    assert_same_outputs(loaded, G)
    info = describe(path)
    assert info["format"] == "phosphene-safetensors"
    assert info["config"] == G.config.to_dict()
    assert info["conditional"] is (c_dim > 0)
    assert info["num_ws"] == G.num_ws
    assert info["params"] == sum(p.numel() for p in G.parameters())
    assert "converted from unit test" in info["notes"]


def test_format_is_sniffed_from_content_not_extension(tmp_path, marker):
    G = tiny_generator(seed=11)
    pickle_named_pt = tmp_path / "looks-like-rosinality.pt"
    write_nvlabs_pickle(pickle_named_pt, G, None, marker)
    torch_named_pkl = tmp_path / "looks-like-nvlabs.pkl"
    write_rosinality_converted(torch_named_pkl, G)
    safetensors_no_ext = tmp_path / "model"
    save_generator(G, safetensors_no_ext)
    assert describe(pickle_named_pt)["format"] == "nvlabs-pickle"
    assert describe(torch_named_pkl)["format"] == "rosinality-pt"
    assert describe(safetensors_no_ext)["format"] == "phosphene-safetensors"
    assert_same_outputs(load_generator(safetensors_no_ext), G)


def test_load_generator_is_reexported_lazily():
    import phosphene.models as models

    assert models.load_generator is load_generator
