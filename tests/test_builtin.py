"""builtin:abstract: deterministic, a real StyleGAN2, and the look the stage needs."""

import pytest
import torch

from phosphene.errors import PhospheneError
from phosphene.models.builtin import build_builtin
from phosphene.models.stylegan2 import Generator


@pytest.fixture(scope="module")
def G():
    return build_builtin("builtin:abstract")


@pytest.fixture(scope="module")
def images(G):
    with torch.inference_mode():
        return G(G.z_from_seeds(range(24)))


def test_two_builds_are_identical(G):
    again = build_builtin("abstract")
    a, b = G.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ...and building does not disturb the caller's global RNG stream
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    build_builtin("abstract")
    assert torch.equal(torch.rand(3), expected)


def test_is_a_stylegan2_with_nvlabs_keys(G):
    plain = Generator(G.config)
    assert {k: v.shape for k, v in plain.state_dict().items()} == \
        {k: v.shape for k, v in G.state_dict().items()}
    assert (G.img_resolution, G.img_channels, G.c_dim) == (256, 3, 0)


def test_unknown_name_lists_known_ones():
    with pytest.raises(PhospheneError, match="builtin:abstract"):
        build_builtin("builtin:faces")


def test_output_uses_the_range_without_heavy_clipping(images):
    assert images.shape == (24, 3, 256, 256)
    assert images.min() < -0.9 and images.max() > 0.9  # reaches both ends of [-1, 1]
    assert (images.abs() > 1).float().mean() < 0.10   # ...without clipping much
    assert abs(images.mean()) < 0.25                  # centred
    # saturated: the colour channels differ (not a grey picture)
    chroma = (images - images.mean(dim=1, keepdim=True)).abs().mean()
    assert chroma > 0.2


def test_no_constant_border(images):
    """Edge pixels vary with the seed about as much as the interior does."""
    edges = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0],
                       images[..., :, -1]], dim=-1)
    interior = images[..., 64:192, 64:192].flatten(-2)
    edge_spread = edges.std(dim=0).mean()
    interior_spread = interior.std(dim=0).mean()
    assert edge_spread > 0.6 * interior_spread
    # and the rim is not pulled to grey (0) compared with the interior
    assert edges.abs().mean() > 0.6 * interior.abs().mean()


def test_frames_change_smoothly_with_the_latent(G):
    z0, z1 = G.z_from_seeds([1, 2])
    steps = torch.linspace(0, 1, 21)
    z = torch.stack([(1 - t) * z0 + t * z1 for t in steps])
    with torch.inference_mode():
        frames = G(z)
    step_change = (frames[1:] - frames[:-1]).abs().mean(dim=[1, 2, 3])
    total_change = (frames[-1] - frames[0]).abs().mean()
    assert total_change > 0.15                          # the two seeds look different
    assert step_change.max() < 0.25 * total_change      # no jumps along the way
    assert step_change.min() > 0                        # and it does move


def test_not_grainy(images):
    """Soft fields: neighbouring pixels are close (little high-frequency energy)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    assert dx < 0.05 * images.std()  # a pixel step is a small fraction of the value spread


def test_moves_to_device(G):
    cpu = build_builtin("abstract", device="cpu")
    assert cpu.device.type == "cpu"
