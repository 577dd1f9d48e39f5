"""The StyleGAN2 generator: each numeric feature against an independent computation.

References here are written the slow, obvious way (numpy/scipy loops, one sample at a time) so
that a mistake in the fast code cannot be mirrored in its check.
"""

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from phosphene.models.stylegan2 import Generator, GeneratorConfig, ops
from phosphene.models.stylegan2 import synthesis as synthesis_module
from phosphene.models.stylegan2.fast import compile_for_live
from phosphene.models.stylegan2.layers import FullyConnectedLayer

FIR = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0


def tiny_config(**kw):
    base = dict(z_dim=16, w_dim=32, img_resolution=16, channel_base=128, channel_max=32,
                mapping_layers=3)
    base.update(kw)
    return GeneratorConfig(**base)


def tiny_generator(seed=0, noise_strength=0.2, **kw):
    torch.manual_seed(seed)
    G = Generator(tiny_config(**kw)).eval()
    with torch.no_grad():  # give biases, noise and w_avg non-trivial values
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.3)
            if name.endswith("noise_strength"):
                p.fill_(noise_strength)
        G.mapping.w_avg.copy_(torch.randn(G.w_dim))
    return G


# --- independent reference pieces ---------------------------------------------------------------

def ref_upfirdn(x, f, up, down, pad):
    """numpy/scipy: zero-insert, pad (x0, x1, y0, y1; negative crops), convolve, decimate."""
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    x0, x1, y0, y1 = pad
    u = np.pad(u, ((0, 0), (0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))))
    u = u[:, :, max(-y0, 0): u.shape[2] - max(-y1, 0), max(-x0, 0): u.shape[3] - max(-x1, 0)]
    out = np.stack([np.stack([scipy.signal.convolve2d(u[i, j], f, mode="valid") for j in range(c)])
                    for i in range(n)])
    return out[:, :, ::down, ::down]


def ref_conv_correlate(x, w, pad):
    """Per-sample, per-output-channel cross-correlation, zero padded (numpy)."""
    n, c, h, wd = x.shape
    o = w.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, o, xp.shape[2] - w.shape[2] + 1, xp.shape[3] - w.shape[3] + 1))
    for i in range(n):
        for k in range(o):
            out[i, k] = sum(scipy.signal.correlate2d(xp[i, j], w[k, j], mode="valid")
                            for j in range(c))
    return out


def ref_modconv(x, weight, styles, demodulate, up):
    """Per-sample modulated kernel; up=2 as NVlabs defines it: zero-insert, FIR (gain 4), then
    a *convolution* (flipped kernel) with padding 1 of the up-sampled image."""
    x, weight, styles = (t.detach().double().numpy() for t in (x, weight, styles))
    outs = []
    for i in range(x.shape[0]):
        wi = weight * styles[i][None, :, None, None]
        if demodulate:
            wi = wi / np.sqrt((wi ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        xi = x[i:i + 1]
        if up == 1:
            outs.append(ref_conv_correlate(xi, wi, wi.shape[-1] // 2))
        else:
            # NVlabs' generic path: pad (fw+up-1)//2 + p - (k-1).. folded: up-sample with FIR
            # so the result has 2H+2 samples, then a 'valid' convolution with the 3x3 kernel.
            ui = ref_upfirdn(xi, FIR * 4, up=2, down=1, pad=(3, 2, 3, 2))
            outs.append(ref_conv_correlate(ui, wi[:, :, ::-1, ::-1], 0))
    return torch.from_numpy(np.concatenate(outs)).float()


# --- ops ---------------------------------------------------------------------------------------

def test_setup_filter_is_normalised_outer_product():
    f = ops.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4)
    np.testing.assert_allclose(f.numpy(), FIR, atol=1e-7)
    assert ops.setup_filter([1] * 8).ndim == 1  # long filters stay separable


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (1, 1, (1, 2, 0, 3)), (2, 1, (-1, 3, 0, -1))])
def test_upfirdn2d_matches_scipy(up, down, pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    f = rng.standard_normal((4, 4))  # asymmetric, so a flip mistake shows
    out = ops.upfirdn2d(torch.from_numpy(x).float(), torch.from_numpy(f).float(), up=up,
                        down=down, padding=list(pad))
    np.testing.assert_allclose(out.numpy(), ref_upfirdn(x, f, up, down, pad), atol=1e-5)


@pytest.mark.parametrize("up,pad,flip", [(2, (2, 1, 2, 1), False), (2, (-1, 3, 0, -1), False),
                                          (2, (1, 1, 2, 3), True), (1, (1, 2, 0, 3), False),
                                          (1, (-1, -1, -1, -1), True), (2, (0, 1, 0, 0), False)])
def test_the_stencil_fir_computes_the_same_filter_without_a_convolution(up, pad, flip,
                                                                        monkeypatch):
    """Traced for the CPU compiler, short filters are shifted-slice sums in polyphase form
    (ops.fir_as_stencil). Same values as scipy's convolution, odd-sized outputs included
    ((2, (0, 1, 0, 0)) gives 11x12 from 6x7), and no convolution runs at all."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6))
    f = rng.standard_normal((4, 4))         # asymmetric, so a flip or a phase mix-up shows

    def no_convolution(*args, **kwargs):
        raise AssertionError("the stencil ran a convolution")

    monkeypatch.setattr(F, "conv2d", no_convolution)
    with ops.fir_as_stencil():
        out = ops.upfirdn2d(torch.from_numpy(x).float(), torch.from_numpy(f).float(), up=up,
                            padding=list(pad), flip_filter=flip, gain=1.5)
    expected = ref_upfirdn(x, f[::-1, ::-1] if flip else f, up, 1, pad) * 1.5   # gain
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_upsample2d_keeps_dc_and_doubles_size():
    x = torch.full([1, 3, 8, 8], 0.7)
    y = ops.upsample2d(x, ops.setup_filter([1, 3, 3, 1]))
    assert y.shape == (1, 3, 16, 16)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 0.7))


def test_bias_act_gain_and_clamp():
    x = torch.tensor([[-2.0, -0.5, 0.5, 3.0]]).T.reshape(1, 4, 1, 1).repeat(1, 1, 2, 2)
    b = torch.tensor([0.1, 0.2, 0.3, 0.4])
    expected = (x + b.reshape(1, 4, 1, 1))
    expected = torch.where(expected > 0, expected, expected * 0.2) * math.sqrt(2)
    torch.testing.assert_close(ops.bias_act(x, b, act="lrelu"), expected)
    clamped = ops.bias_act(x, b, act="lrelu", gain=2.0, clamp=1.0)
    assert clamped.max() == 1.0 and clamped.min() >= -1.0
    torch.testing.assert_close(ops.bias_act(x, b), x + b.reshape(1, 4, 1, 1))  # linear gain 1


@pytest.mark.parametrize("flip_weight", [True, False])
def test_conv2d_resample_up_matches_reference(flip_weight):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 5, 5)
    w = torch.randn(4, 3, 3, 3)
    out = ops.conv2d_resample(x, w, f=ops.setup_filter([1, 3, 3, 1]), up=2, padding=1,
                              flip_weight=flip_weight)
    u = ref_upfirdn(x.double().numpy(), FIR * 4, up=2, down=1, pad=(3, 2, 3, 2))
    kernel = w.double().numpy() if flip_weight else w.double().numpy()[:, :, ::-1, ::-1]
    ref = ref_conv_correlate(u, kernel, 0)
    assert out.shape == (2, 4, 10, 10)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-4)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_per_sample_conv(up, fused, demodulate):
    torch.manual_seed(3)
    x = torch.randn(3, 4, 6, 6)
    weight = torch.randn(5, 4, 3, 3)
    styles = torch.randn(3, 4)
    out = ops.modulated_conv2d(x, weight, styles, up=up, padding=1, demodulate=demodulate,
                               resample_filter=ops.setup_filter([1, 3, 3, 1]),
                               flip_weight=(up == 1), fused_modconv=fused)
    torch.testing.assert_close(out, ref_modconv(x, weight, styles, demodulate, up),
                               atol=2e-4, rtol=1e-4)


def test_fully_connected_gains():
    torch.manual_seed(4)
    layer = FullyConnectedLayer(8, 5, activation="lrelu", lr_multiplier=0.01)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(5) * 30)
    x = torch.randn(3, 8)
    pre = x @ (layer.weight * 0.01 / math.sqrt(8)).T + layer.bias * 0.01
    expected = F.leaky_relu(pre, 0.2) * math.sqrt(2)
    torch.testing.assert_close(layer(x), expected)
    linear = FullyConnectedLayer(8, 5, bias_init=1)
    torch.testing.assert_close(linear(x), x @ (linear.weight / math.sqrt(8)).T + 1)


# --- whole network ------------------------------------------------------------------------------

def test_state_dict_keys_and_shapes_match_nvlabs_layout():
    G = Generator(GeneratorConfig(z_dim=16, w_dim=32, c_dim=5, img_resolution=8, channel_base=64,
                                  channel_max=16, mapping_layers=2))
    # channels: 4x4 -> min(64/4, 16) = 16, 8x8 -> 8
    def layer(prefix, cin, cout, res, w=32):
        return {f"{prefix}.weight": (cout, cin, 3, 3), f"{prefix}.noise_strength": (),
                f"{prefix}.bias": (cout,), f"{prefix}.resample_filter": (4, 4),
                f"{prefix}.noise_const": (res, res), f"{prefix}.affine.weight": (cin, w),
                f"{prefix}.affine.bias": (cin,)}

    def torgb(prefix, cin, w=32):
        return {f"{prefix}.weight": (3, cin, 1, 1), f"{prefix}.bias": (3,),
                f"{prefix}.affine.weight": (cin, w), f"{prefix}.affine.bias": (cin,)}

    expected = {
        "mapping.embed.weight": (32, 5), "mapping.embed.bias": (32,),
        "mapping.fc0.weight": (32, 48), "mapping.fc0.bias": (32,),
        "mapping.fc1.weight": (32, 32), "mapping.fc1.bias": (32,),
        "mapping.w_avg": (32,),
        "synthesis.b4.const": (16, 4, 4), "synthesis.b4.resample_filter": (4, 4),
        "synthesis.b8.resample_filter": (4, 4),
        **layer("synthesis.b4.conv1", 16, 16, 4), **torgb("synthesis.b4.torgb", 16),
        **layer("synthesis.b8.conv0", 16, 8, 8), **layer("synthesis.b8.conv1", 8, 8, 8),
        **torgb("synthesis.b8.torgb", 8),
    }
    got = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    assert got == expected
    assert G.num_ws == 4  # b4: conv1 (+torgb shared) ; b8: conv0, conv1, torgb


@pytest.mark.parametrize("res,num_ws", [(4, 2), (16, 6), (256, 14), (1024, 18)])
def test_num_ws(res, num_ws):
    assert GeneratorConfig(img_resolution=res).num_ws == num_ws
    if res <= 16:
        assert Generator(tiny_config(img_resolution=res)).num_ws == num_ws


def test_generator_matches_hand_composed_reference():
    """Mapping, const, modulated convs, noise, bias+act, toRGB and the skip sum, composed
    from the reference pieces above for an 8x8 network."""
    G = tiny_generator(img_resolution=8)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        # mapping: normalise z, fc layers with lr-multiplied gains, lrelu * sqrt(2)
        x = z / torch.sqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
        for i in range(G.config.mapping_layers):
            fc = getattr(G.mapping, f"fc{i}")
            lr = G.config.mapping_lr_multiplier
            x = F.leaky_relu(x @ (fc.weight * lr / math.sqrt(fc.weight.shape[1])).T
                             + fc.bias * lr, 0.2) * math.sqrt(2)
        w = x

        def affine(a):
            return w @ (a.weight / math.sqrt(a.weight.shape[1])).T + a.bias

        def synth_layer(layer, h, up):
            y = ref_modconv(h, layer.weight, affine(layer.affine), True, up)
            y = y + layer.noise_const * layer.noise_strength
            return F.leaky_relu(y + layer.bias.reshape(1, -1, 1, 1), 0.2) * math.sqrt(2)

        def rgb(layer, h):
            styles = affine(layer.affine) / math.sqrt(layer.weight.shape[1])
            return ref_modconv(h, layer.weight, styles, False, 1) + layer.bias.reshape(1, -1, 1, 1)

        b4, b8 = G.synthesis.b4, G.synthesis.b8
        h = synth_layer(b4.conv1, b4.const.unsqueeze(0).repeat(2, 1, 1, 1), 1)
        img = rgb(b4.torgb, h)
        h = synth_layer(b8.conv0, h, 2)
        h = synth_layer(b8.conv1, h, 1)
        up = torch.from_numpy(ref_upfirdn(img.double().numpy(), FIR * 4, 2, 1, (2, 1, 2, 1)))
        expected = up.float() + rgb(b8.torgb, h)

        torch.testing.assert_close(G(z), expected, atol=3e-4, rtol=1e-4)
        torch.testing.assert_close(G(z, fused_modconv=False), expected, atol=3e-4, rtol=1e-4)


def test_z_is_normalised_so_its_scale_does_not_matter():
    G = tiny_generator()
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(G.mapping(z, None), G.mapping(z * 7.5, None))


def test_truncation_psi_and_cutoff():
    G = tiny_generator()
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        ws = G.mapping(z, None)
        assert torch.equal(ws[:, 0], ws[:, -1])  # broadcast: every layer gets the same w
        avg = G.mapping(z, None, truncation_psi=0)
        torch.testing.assert_close(avg, G.mapping.w_avg.expand_as(avg).contiguous())
        half = G.mapping(z, None, truncation_psi=0.5)
        torch.testing.assert_close(half, G.mapping.w_avg + 0.5 * (ws - G.mapping.w_avg))
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        torch.testing.assert_close(cut[:, :2], half[:, :2])
        torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
        assert not torch.allclose(cut[:, 2:], half[:, 2:])


def test_conv_clamp_bounds_every_layer():
    G = tiny_generator(conv_clamp=0.25)
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o))
             for name, m in G.named_modules() if name.endswith(("conv0", "conv1", "torgb"))]
    with torch.no_grad():
        G(torch.randn(3, G.z_dim) * 5)
    for h in hooks:
        h.remove()
    assert len(outputs) == 3 * 3 - 1
    assert all(o.abs().max() <= 0.25 + 1e-6 for o in outputs)
    unclamped = tiny_generator()
    with torch.no_grad():
        assert unclamped.synthesis.b16.conv1.bias.abs().max() > 0  # sanity: nontrivial net
        raw = []
        hk = unclamped.synthesis.b16.conv1.register_forward_hook(lambda m, i, o: raw.append(o))
        unclamped(torch.randn(3, G.z_dim) * 5)
        hk.remove()
    assert raw[0].abs().max() > 0.25  # the clamp is what bounded the first network


def test_noise_modes():
    G = tiny_generator(noise_strength=0.5)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        const_a, const_b = G(z, noise_mode="const"), G(z, noise_mode="const")
        rand_a, rand_b = G(z, noise_mode="random"), G(z, noise_mode="random")
        none = G(z, noise_mode="none")
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.zero_()
        zero_strength = G(z, noise_mode="const")
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(rand_a, rand_b)
    assert not torch.allclose(const_a, none)
    torch.testing.assert_close(none, zero_strength)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="loud")


def test_conditional_embedding_changes_output():
    G = tiny_generator(c_dim=3)
    z = torch.randn(1, G.z_dim).repeat(2, 1)
    c = torch.eye(3)[[0, 2]]
    with torch.no_grad():
        img = G(z, c)
        assert not torch.allclose(img[0], img[1])
        # embedding: normalised embed(c) concatenated after normalised z
        ws = G.mapping(z, c)
        assert ws.shape == (2, G.num_ws, G.w_dim)
    with pytest.raises(ValueError, match="c is required"):
        G(z, None)
    assert G.class_vector(1, batch_size=2).tolist() == [[0, 1, 0], [0, 1, 0]]


def test_unconditional_accepts_none_and_checks_shapes():
    G = tiny_generator()
    with torch.no_grad():
        assert G(torch.randn(2, G.z_dim)).shape == (2, 3, 16, 16)
        with pytest.raises(ValueError, match=r"z must have shape \[N, 16\]"):
            G(torch.randn(2, 5))
        with pytest.raises(ValueError, match="ws must have shape"):
            G.synthesis(torch.randn(2, 3, G.w_dim))


def test_seeds_give_numpy_randomstate_latents():
    G = tiny_generator()
    z = G.z_from_seeds([5, 6])
    np.testing.assert_allclose(z[1].numpy(), np.random.RandomState(6).randn(G.z_dim), rtol=1e-6)


def test_fp16_blocks_follow_num_fp16_res_and_stay_close(monkeypatch):
    """NVlabs: the N highest resolutions (never below 8) in fp16, output float32. fp16 runs on
    CUDA only; the same code path is exercised here by allowing it on the CPU."""
    G = tiny_generator(img_resolution=32, num_fp16_res=2, noise_strength=0.1)
    assert [b.use_fp16 for b in G.synthesis.blocks()] == [False, False, True, True]
    G.synthesis.set_num_fp16_res(10)
    assert [b.use_fp16 for b in G.synthesis.blocks()] == [False, True, True, True]
    G.synthesis.set_num_fp16_res(2)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        fp32 = G(z)  # CPU: fp16 blocks run in fp32
        assert G.synthesis.b32.compute_dtype(torch.device("cpu")) == torch.float32
        monkeypatch.setattr(synthesis_module, "FP16_DEVICE_TYPES", ("cuda", "cpu"))
        seen = []
        hook = G.synthesis.b32.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        fp16 = G(z)
        hook.remove()
        forced = G(z, force_fp32=True)
    assert seen == [torch.float16]
    assert fp16.dtype == torch.float32
    torch.testing.assert_close(forced, fp32)
    assert (fp16 - fp32).abs().max() < 0.05 * fp32.abs().max()


def test_compile_for_live_agrees_with_eager():
    G = tiny_generator(img_resolution=8)
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    with torch.no_grad():
        expected = G.synthesis(ws)
    eager = compile_for_live(G, enable=False)
    assert not eager.compiled
    torch.testing.assert_close(eager(ws), expected)
    live = compile_for_live(G)  # compiled where a compiler exists, eager otherwise
    assert live.reason
    torch.testing.assert_close(live(ws), expected, atol=1e-4, rtol=1e-4)
    ws2 = G.mapping(torch.randn(1, G.z_dim), None)
    with torch.no_grad():
        torch.testing.assert_close(live(ws2), G.synthesis(ws2), atol=1e-4, rtol=1e-4)


def test_the_cpu_compile_is_built_in_a_child_process_and_cached(tmp_path, monkeypatch):
    """On the CPU the compiled synthesis is an AOTInductor package built by a child process
    (aot.py: a compile in the show's process held its interpreter lock and starved the audio).
    This process neither traces nor compiles: torch.export and torch.compile raise here. The
    package holds no weights, so another network of the same architecture is served from the
    cache and renders its own weights, and a damaged package is built again."""
    from phosphene.models.stylegan2 import aot, fast

    from phosphene.live.runtime.live_compile import cpp_compiler

    if cpp_compiler() is None:
        pytest.skip("AOTInductor needs a C++ compiler")
    monkeypatch.setenv("PHOSPHENE_CACHE_DIR", str(tmp_path / "cache"))

    def not_here(*args, **kwargs):
        raise AssertionError("traced or compiled in the show's process")

    monkeypatch.setattr(torch, "compile", not_here)
    monkeypatch.setattr(torch.export, "export", not_here)
    # no noise: the calls below take no maps, as the package was built for (another input
    # signature would run eager and prove nothing; eager_calls counts those)
    G = tiny_generator(img_resolution=8, noise_strength=0.0)
    live = compile_for_live(G)
    assert live.compiled, live.reason
    assert "AOTInductor package" in live.reason and "built in" in live.reason
    packages = list((tmp_path / "cache" / "compiled").glob("synthesis-*.pt2"))
    assert len(packages) == 1
    assert not list((tmp_path / "cache" / "compiled").glob("build-*"))   # job folders go
    ws = G.mapping(torch.randn(1, G.z_dim), None).detach()
    with torch.no_grad():
        torch.testing.assert_close(live(ws), G.synthesis(ws, noise_mode=live.noise_mode),
                                   atol=1e-4, rtol=1e-4)

    other = tiny_generator(img_resolution=8, seed=7, noise_strength=0.0)   # other weights
    served = compile_for_live(other)
    assert served.compiled and "from the cache" in served.reason, served.reason
    with torch.no_grad():
        expected = other.synthesis(ws, noise_mode=served.noise_mode)
        assert (expected - G.synthesis(ws, noise_mode=served.noise_mode)).abs().max() > 1e-2
    torch.testing.assert_close(served(ws), expected, atol=1e-4, rtol=1e-4)

    packages[0].write_bytes(b"not a package")              # a damaged cache file
    rebuilt = compile_for_live(other)
    assert rebuilt.compiled and "built in" in rebuilt.reason, rebuilt.reason
    torch.testing.assert_close(rebuilt(ws), expected, atol=1e-4, rtol=1e-4)
    assert live.eager_calls == served.eager_calls == rebuilt.eager_calls == 0

    # the plan for each device: CUDA (not runnable here; `bench gpu` checks it there) is
    # inductor's default mode captured in a plain CUDA graph -- not reduce-overhead, whose
    # graph trees fail on another thread; an explicit mode is a plain torch.compile
    assert fast.compile_plan("cpu", None) == ("ahead", {"layout_optimization": False})
    assert fast.compile_plan("cuda", None) == ("graph", {"mode": "default"})
    assert fast.compile_plan("mps", None) == ("compile", {"mode": "default"})
    assert fast.compile_plan("cpu", "max-autotune") == ("compile", {"mode": "max-autotune"})
    assert aot.INDUCTOR_CONFIGS == {"layout_optimization": False}


def test_the_package_key_follows_the_architecture_and_inputs_not_the_weights():
    from phosphene.models.stylegan2 import aot

    G, other = tiny_generator(img_resolution=8), tiny_generator(img_resolution=8, seed=7)
    shape = (1, G.num_ws, G.w_dim)
    key = aot.package_key(G.synthesis, shape, "none", None, False, 1)
    assert aot.package_key(other.synthesis, shape, "none", None, False, 1) == key
    assert aot.package_key(tiny_generator(img_resolution=16).synthesis,
                           (1, tiny_generator(img_resolution=16).num_ws, G.w_dim),
                           "none", None, False, 1) != key
    assert aot.package_key(G.synthesis, (2,) + shape[1:], "none", None, False, 1) != key
    assert aot.package_key(G.synthesis, shape, "none", None, True, 1) != key
    assert aot.package_key(G.synthesis, shape, "none", None, False, 2) != key
    assert aot.package_key(G.synthesis, shape, "const", [(1, 1, 4, 4)], False, 1) != key
    clamped = tiny_generator(img_resolution=8)
    for module in clamped.synthesis.modules():      # a setting that is no tensor's shape
        if hasattr(module, "conv_clamp"):
            module.conv_clamp = 128
    assert aot.package_key(clamped.synthesis, shape, "none", None, False, 1) != key


def test_the_exported_synthesis_filters_as_stencils_inductor_can_fuse():
    """What the CPU package is built from: every convolution left in the exported graph is a
    modulated one (groups 1 at batch 1); the 4x4 up-sampling filters are shifted-slice sums
    that inductor fuses, not depthwise convolutions (mkldnn runs those ~3x slower on a few
    channels). The exported graph still renders the network's image."""
    from phosphene.models.stylegan2 import aot

    G = tiny_generator(img_resolution=16, noise_strength=0.0)
    call = aot.ExportedSynthesis(G.synthesis, "none", False).eval()
    tensors = dict(G.synthesis.named_parameters()) | dict(G.synthesis.named_buffers())
    weights = [tensors[name] for name in call.names]
    ws = G.mapping(torch.randn(1, G.z_dim), None).detach()
    with torch.no_grad():
        program = torch.export.export(call, (ws, weights), strict=False).run_decompositions()
        convolutions = [node for node in program.graph.nodes
                        if node.target == torch.ops.aten.convolution.default]
        modulated = sum(block.num_conv + block.num_torgb for block in G.synthesis.blocks())
        assert len(convolutions) == modulated
        assert all(node.args[-1] == 1 for node in convolutions)     # groups
        torch.testing.assert_close(program.module()(ws, weights),
                                   G.synthesis(ws, noise_mode="none"), atol=1e-5, rtol=1e-5)


def test_the_compiled_synthesis_takes_plain_tensors_without_falling_back():
    """Callers outside the live path (bench gpu, scripts) hand in ordinary tensors, not the
    inference tensors the compile saw; they must still run the compiled code (bench gpu once
    timed eager frames as "compiled" because of this)."""
    G = tiny_generator(img_resolution=8)
    live = compile_for_live(G)
    if not live.compiled:
        pytest.skip(f"no compiled synthesis on this machine: {live.reason}")
    live.stance = "fail_on_recompile"
    from phosphene.models.stylegan2.fast import warmup_noise

    ws = G.mapping(torch.randn(1, G.z_dim), None).detach()
    maps = warmup_noise(G, 1, torch.device("cpu"))
    noise = None if maps is None else [m.clone() for m in maps]    # plain copies
    assert not ws.is_inference() and all(not m.is_inference() for m in noise or [])
    out = live(ws, noise=noise)
    assert live.eager_calls == 0
    with torch.no_grad():
        torch.testing.assert_close(out, G.synthesis(ws, noise_mode=live.noise_mode, noise=noise),
                                   atol=1e-4, rtol=1e-4)


def test_frame_generator_with_the_compiled_synthesis_matches_eager_with_noise():
    """The live engine's compiled path: FrameGenerator hands the director's noise maps to the
    synthesis as inputs, and the compiled synthesis must see them (noise on and off)."""
    from phosphene.live.runtime.generation import FrameGenerator
    from phosphene.live.show.director import LatentRequest

    G = tiny_generator(img_resolution=8, noise_strength=0.5)
    live = compile_for_live(G)
    live.stance = "fail_on_recompile"    # the live inputs must be the ones compiled for
    eager, fast = FrameGenerator(G, "cpu", max_batch=1), FrameGenerator(G, "cpu", max_batch=1,
                                                                       synthesis=live)
    w = G.mapping(torch.randn(1, G.z_dim), None)[0].detach().numpy()
    outputs = set()
    for seed, strength in ((1, 1.0), (2, 1.0), (2, 0.0)):
        request = LatentRequest(sample_index=0, w=w, w_raw=w, truncation_psi=1.0,
                                noise_strength=strength, noise_seed=seed, keyframe=0)
        expected, got = eager.generate(request), fast.generate(request)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        outputs.add(round(float(got.sum()), 3))
    assert len(outputs) == 3                   # the seeds and strengths did change the frame
    assert live.eager_calls == 0
