"""Latent directions (issue 14): SeFa and GANSpace against reference decompositions, the cache,
the CLI, and ``directions:`` in presets (parameters ``dir.k`` that OSC, mappings and MIDI reach,
frames that move continuously and stay byte-identical at 0)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from live_engine_helpers import tiny_generator
from phosphene.errors import PhospheneError
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.show.events import ControlEvent
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.show import GeneratorFacts, Show
from phosphene.models.latent import directions as dirs
from phosphene.models.latent.direction_grid import HEADER_HEIGHT, LABEL_WIDTH
from phosphene.models.latent.layers import layer_rows, parse_layers
from phosphene.models.loading import save_generator
from phosphene.models.stylegan2.layers import SynthesisLayer

SR = 48000
HOP = 512


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test computes into its own cache folder, never the user's."""
    monkeypatch.setenv("PHOSPHENE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def G():
    return tiny_generator(seed=3)


# -- the weights and the two methods -------------------------------------------------------------
def test_style_layers_name_the_w_row_each_conv_reads(G):
    """Feed w row r filled with the value r and record what each conv's affine layer sees."""
    seen = {}
    hooks = [layer.affine.register_forward_hook(
        lambda mod, inp, out, layer=layer: seen.__setitem__(layer.affine, inp[0][0, 0].item()))
        for layer in G.synthesis.modules() if isinstance(layer, SynthesisLayer)]
    try:
        ws = torch.arange(G.num_ws, dtype=torch.float32)[None, :, None].expand(1, -1, G.w_dim)
        with torch.no_grad():
            G.synthesis(ws.contiguous())
    finally:
        for hook in hooks:
            hook.remove()
    pairs = dirs.style_layers(G)
    assert len(pairs) == len(seen) == sum(isinstance(m, SynthesisLayer) for m in G.modules())
    assert {affine: float(row) for row, affine in pairs} == seen


def test_sefa_directions_are_orthonormal_and_match_a_reference_eigendecomposition(G):
    vectors, eigenvalues = dirs.sefa(G, parse_layers("all", G.num_ws))
    assert vectors.shape == (G.w_dim, G.w_dim)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(G.w_dim), atol=1e-10)

    # the reference: every modulated conv's affine weight, rows normalised, numpy's eigh
    A = np.concatenate([m.affine.weight.detach().double().numpy() for m in G.modules()
                        if isinstance(m, SynthesisLayer)])
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    ref_values, ref_vectors = np.linalg.eigh(A.T @ A)
    order = np.argsort(ref_values)[::-1]
    ref_values, ref_vectors = ref_values[order], ref_vectors[:, order].T
    np.testing.assert_allclose(eigenvalues, ref_values, rtol=1e-9, atol=1e-9)
    assert np.all(np.diff(eigenvalues) <= 0)                    # most important first
    # equal up to sign (random weights: the eigenvalues are distinct)
    np.testing.assert_allclose(np.abs(np.sum(vectors * ref_vectors, axis=1)), 1.0, atol=1e-8)


def test_sefa_on_a_layer_group_uses_only_that_groups_convs(G):
    coarse = parse_layers("coarse", G.num_ws)
    vectors, _ = dirs.sefa(G, coarse)
    A = np.concatenate([affine.weight.detach().double().numpy()
                        for row, affine in dirs.style_layers(G) if row in coarse])
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    ref = np.linalg.eigh(A.T @ A)[1][:, ::-1].T
    np.testing.assert_allclose(np.abs(np.sum(vectors * ref, axis=1)), 1.0, atol=1e-8)
    assert not np.allclose(np.abs(vectors), np.abs(dirs.sefa(G, parse_layers("fine", G.num_ws))[0]))
    with pytest.raises(PhospheneError, match="no modulated convolution"):
        dirs.sefa(G, (G.num_ws - 1,))                   # the last row feeds only toRGB


def test_ganspace_components_match_a_reference_pca(G):
    samples = dirs.sample_w(G, 600)
    with torch.no_grad():      # the samples are the mapping of z drawn from the fixed seed
        z = torch.randn([600, G.z_dim], generator=torch.Generator().manual_seed(dirs.SAMPLE_SEED))
        np.testing.assert_allclose(samples, G.mapping(z, None)[:, 0].double().numpy(),
                                   rtol=1e-5, atol=1e-6)
    vectors, variances = dirs.ganspace(samples)

    centred = samples - samples.mean(axis=0)
    _, S, Vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(variances, S ** 2 / (len(samples) - 1), rtol=1e-9)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(G.w_dim), atol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(vectors * Vt, axis=1)), 1.0, atol=1e-8)

    found = dirs.compute_directions(G, "ganspace", samples=600)
    # sigma: the spread of w along each direction = sqrt of the PCA variance
    np.testing.assert_allclose(found.sigmas, np.sqrt(variances), rtol=1e-5)


def test_sefa_sigmas_are_the_spread_of_sampled_w_along_each_direction(G):
    found = dirs.compute_directions(G, "sefa", "middle", samples=500)
    w = dirs.sample_w(G, 500)
    ref = ((w - w.mean(axis=0)) @ found.vectors.T.astype(np.float64)).std(axis=0, ddof=1)
    np.testing.assert_allclose(found.sigmas, ref, rtol=1e-4)
    assert found.rows == tuple(range(G.num_ws))[layer_rows(G.num_ws)["middle"]]


def test_layer_specs():
    assert parse_layers("all", 14) == tuple(range(14))
    assert parse_layers("coarse", 14) == (0, 1, 2, 3)
    assert parse_layers("fine", 14) == tuple(range(8, 14))
    assert parse_layers("2-5", 14) == (2, 3, 4, 5)
    assert parse_layers("7", 14) == (7,)
    for bad in ("5-2", "loud", "1-2-3", ""):
        with pytest.raises(ValueError):
            parse_layers(bad, 14)
    with pytest.raises(ValueError, match="0-13"):
        parse_layers("10-14", 14)


# -- the cache -----------------------------------------------------------------------------------
def test_the_second_request_reads_the_cache_without_computing(G, private_cache, monkeypatch):
    first = dirs.directions_for(G, "ganspace", "coarse", samples=300)
    files = list(private_cache.glob("directions/*.npz"))
    assert len(files) == 1 and first.model_key == dirs.model_key(G)
    stamp = files[0].stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("computed again although the cache holds the result")

    monkeypatch.setattr(dirs, "compute_directions", must_not_run)
    second = dirs.directions_for(G, "ganspace", "coarse", samples=300)
    assert files[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.vectors, first.vectors)
    np.testing.assert_array_equal(second.sigmas, first.sigmas)
    assert second.rows == first.rows

    # another model (one weight changed) is another key: computed, not served from the cache
    other = tiny_generator(seed=3)
    with torch.no_grad():
        other.synthesis.b4.conv1.affine.weight[0, 0] += 1.0
    assert dirs.model_key(other) != dirs.model_key(G)
    with pytest.raises(AssertionError, match="computed again"):
        dirs.directions_for(other, "ganspace", "coarse", samples=300)
    # a weight the directions do not depend on (toRGB) keeps the key
    rgb = tiny_generator(seed=3)
    with torch.no_grad():
        rgb.synthesis.b4.torgb.weight.mul_(2.0)
    assert dirs.model_key(rgb) == dirs.model_key(G)


def test_the_shows_direction_source_reads_the_weights_as_loaded(G):
    """Model mixing blends synthesis weights into G in place while the show runs: the source
    factorises the affine weights as they were when the facts were made."""
    G2 = tiny_generator(seed=3)
    source = dirs.direction_source(G2)
    with torch.no_grad():
        for _, affine in dirs.style_layers(G2):
            affine.weight.add_(torch.randn_like(affine.weight))
    found = source("sefa", "all", 300)
    expected = dirs.compute_directions(G, "sefa", samples=300)
    np.testing.assert_allclose(found.vectors, expected.vectors, atol=1e-6)
    assert found.model_key == dirs.model_key(G)
    assert source("sefa", "all", 300) is found                   # remembered per request


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_writes_the_directions_and_a_labelled_grid(G, tmp_path, private_cache):
    model = tmp_path / "tiny.safetensors"
    save_generator(G, model, source="test")
    out, grid = tmp_path / "dirs.npz", tmp_path / "grid.png"
    result = subprocess.run(
        [sys.executable, "-m", "phosphene", "models", "directions", str(model), "--method",
         "sefa", "-n", "5", "--layers", "coarse", "--samples", "400", "-o", str(out),
         "--grid", str(grid), "--steps", "5", "--thumb", "32", "--name", "1=zoom",
         "--no-progress"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PHOSPHENE_CACHE_DIR": str(private_cache)})
    assert result.returncode == 0, result.stderr
    assert "dir.4" in result.stdout

    saved = dirs.DirectionSet.load(out)
    expected = dirs.directions_for(G, "sefa", "coarse", samples=400).head(5)
    assert saved.method == "sefa" and len(saved) == 5 and saved.samples == 400
    assert saved.rows == parse_layers("coarse", G.num_ws)
    np.testing.assert_allclose(saved.vectors, expected.vectors, atol=1e-6)
    np.testing.assert_allclose(saved.sigmas, expected.sigmas, rtol=1e-5)
    assert list(private_cache.glob("directions/*.npz"))

    with Image.open(grid) as im:
        assert im.format == "PNG"
        assert im.size == (LABEL_WIDTH + 5 * 32, HEADER_HEIGHT + 5 * 32)
        pixels = np.asarray(im.convert("RGB")).astype(int)
    labels = pixels[HEADER_HEIGHT:, :LABEL_WIDTH]
    assert (labels > 128).any()                                 # the row names are drawn
    row0 = pixels[HEADER_HEIGHT:HEADER_HEIGHT + 32, LABEL_WIDTH:]
    first, last = row0[:, :32], row0[:, -32:]
    assert np.abs(first - last).mean() > 1.0                   # -3 sigma and +3 sigma differ


def test_cli_refuses_a_bad_layer_spec(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "phosphene", "models", "directions", "builtin:abstract",
         "--layers", "loud", "-o", str(tmp_path / "d.npz")], capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 2 and "layers 'loud'" in result.stderr


# -- presets and the show ------------------------------------------------------------------------
PRESET = """
name: dirs
keyframes: [{seed: 1}, {seed: 2}]
modes: {drift: {weight: 0}}
%s
mappings:
  - {source: low, target: mode.volume-blend, gain: 0}
"""

DIRECTIONS = """
directions: {method: sefa, count: 4, layers: all, names: {2: zoom}, range: 3, samples: 400}
mappings:
  - {source: low, target: dir.2}
midi:
  cc: [{control: 20, target: dir.1}]
"""


def _preset(extra: str = ""):
    data = yaml.safe_load(PRESET % "")
    data.update(yaml.safe_load(extra) or {})
    return parse_preset(data)


def _frames(G, states):
    gen = FrameGenerator(G, "cpu", max_batch=1)
    return [gen.generate(s.request).numpy() for s in states]


def _state_with(show: Show, values: dict[str, float], hop: int):
    for name, value in values.items():
        show.set_parameter(name, value, immediate=True)
    return show.advance(FeatureFrame.silent(hop * HOP, SR))


def test_preset_directions_are_parameters_that_osc_mappings_and_midi_reach():
    preset = _preset(DIRECTIONS)
    specs = preset.parameter_specs()
    assert [f"dir.{k}" for k in range(4)] == sorted(n for n in specs if n.startswith("dir."))
    assert (specs["dir.0"].minimum, specs["dir.0"].maximum, specs["dir.0"].default) == (-3, 3, 0)
    assert specs["dir.2"].help.startswith("zoom:")               # the name is the label
    assert [m.target for m in preset.mappings] == ["dir.2"] and preset.midi.cc[0].target == "dir.1"

    context = routes.NamespaceContext(parameters=specs, effects=frozenset())
    route, args = routes.validate("/phosphene/param/dir.3", [1.5], context)
    assert route.pattern.endswith("/param/<name>") and args == (1.5,)
    with pytest.raises(routes.Rejected, match="unknown parameter 'dir.4'"):
        routes.validate("/phosphene/param/dir.4", [1.0], context)
    with pytest.raises(routes.Rejected):
        routes.validate("/phosphene/param/zoom", [1.0], context)  # a name is a label only

    # the round trip a recording makes keeps the section (``range`` is the key on disk)
    from phosphene.live.show.show import preset_to_yaml
    again = parse_preset(yaml.safe_load(preset_to_yaml(preset)))
    assert again.directions == preset.directions


@pytest.mark.parametrize("section, message", [
    ("directions: {count: 4, names: {4: far}}", "direction 4 does not exist"),
    ("directions: {layers: loud}", "layers 'loud'"),
    ("directions: {method: pca}", "directions.method"),
    ("directions: {count: 2}\nmappings: [{source: low, target: dir.2}]",
     "unknown parameter 'dir.2'"),
])
def test_bad_directions_sections_are_named(section, message):
    with pytest.raises(PhospheneError, match=message):
        _preset(section)


def test_dir_k_zero_leaves_frames_byte_identical_and_moves_continuously(G):
    facts = GeneratorFacts.from_generator(G)
    plain = Show(_preset(), facts, SR)
    directed = Show(_preset(DIRECTIONS), facts, SR)
    states_plain = [plain.advance(FeatureFrame.silent(i * HOP, SR)) for i in range(1, 4)]
    states_dir = [directed.advance(FeatureFrame.silent(i * HOP, SR)) for i in range(1, 4)]
    for a, b in zip(states_plain, states_dir):
        assert a.w.tobytes() == b.w.tobytes()
    for a, b in zip(_frames(G, states_plain), _frames(G, states_dir)):
        assert a.tobytes() == b.tobytes()

    # moving along dir.0: a small step is a small change, and the change grows with the step
    base = _frames(G, [states_dir[-1]])[0]
    amounts = [0.01, 0.05, 0.2, 0.5, 1.0, 2.0]
    changes, offsets = [], []
    for i, amount in enumerate(amounts):
        state = _state_with(directed, {"dir.0": amount}, 4 + i)
        offsets.append(state.w - states_dir[-1].w)
        changes.append(float(np.abs(_frames(G, [state])[0] - base).mean()))
    assert 0 < changes[0] < 0.05 * changes[-1]              # 1/200 of the way: tiny
    assert all(b > a for a, b in zip(changes, changes[1:])), changes
    # the offset is exactly amount * sigma_0 * d_0 on every row (layers: all)
    found = facts.directions("sefa", "all", 400)
    for amount, offset in zip(amounts, offsets):
        np.testing.assert_allclose(offset, np.broadcast_to(
            amount * found.sigmas[0] * found.vectors[0], offset.shape), atol=1e-5)

    # back to 0: the same bytes as the preset without directions
    state = _state_with(directed, {"dir.0": 0.0}, 20)
    plain_state = plain.advance(FeatureFrame.silent(20 * HOP, SR))
    assert state.w.tobytes() == plain_state.w.tobytes()


def test_directions_act_only_on_their_layers_and_arrive_through_osc(G):
    facts = GeneratorFacts.from_generator(G)
    section = DIRECTIONS.replace("layers: all", "layers: fine")
    show = Show(_preset(section), facts, SR)
    before = show.advance(FeatureFrame.silent(HOP, SR)).w.copy()
    routes.perform([ControlEvent(HOP, "/phosphene/param/dir.3", (2.0,))], show)
    assert show.controls.params.target("dir.3") == 2.0
    for i in range(2, 150):          # let the 80 ms smoothing arrive (1.6 s: e^-20 left)
        after = show.advance(FeatureFrame.silent(i * HOP, SR)).w
    fine = list(parse_layers("fine", G.num_ws))
    others = [r for r in range(G.num_ws) if r not in fine]
    assert after[others].tobytes() == before[others].tobytes()
    found = facts.directions("sefa", "fine", 400)
    np.testing.assert_allclose(after[fine] - before[fine], np.broadcast_to(
        2.0 * found.sigmas[3] * found.vectors[3], (len(fine), G.w_dim)), atol=1e-4)


def test_a_generator_without_directions_refuses_such_a_preset_clearly(G):
    facts = GeneratorFacts.from_generator(G)
    bare = GeneratorFacts(facts.z_dim, facts.w_dim, facts.num_ws, facts.mapper, facts.w_avg)
    with pytest.raises(PhospheneError, match="offers no latent directions"):
        Show(_preset(DIRECTIONS), bare, SR)
    too_many = DIRECTIONS.replace("count: 4", "count: 64").replace("{2: zoom}", "{}")
    with pytest.raises(PhospheneError, match="only 16 directions"):   # w_dim 16
        Show(_preset(too_many), facts, SR)
