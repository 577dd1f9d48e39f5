"""The pure core: parameters, mappings, tempo, latent arithmetic and the director's modes."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from phosphene.live.show.director import Director, crossfade
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.analysis.envelopes import smoothing_retain, smoothing_step
from phosphene.live.show.keyframes import (
    SavedKeyframe, SeedKeyframe, SlerpKeyframe, mapper_from_generator, resolve_keyframes, save_w,
)
from phosphene.live.show.latents import ease, layer_rows, lerp, slerp, truncate, z_from_seed
from phosphene.live.show.mappings import Mapping, MappingBank, apply_curve, follow, lfo_value, parse_source
from phosphene.live.show.modes import (
    DirectorSettings, DriftSettings, LayerGroupSettings, LayerSplitSettings, OnsetStepSettings,
    VolumeBlendSettings,
)
from phosphene.live.show.params import ParameterSet, ParameterSpec
from phosphene.live.analysis.tap_tempo import TapTempo, effective_tempo
from phosphene.models.stylegan2.config import GeneratorConfig
from phosphene.models.stylegan2.generator import Generator

SR = 48000


def frame(i: int = 0, **kw) -> FeatureFrame:
    base = FeatureFrame.silent(i, SR)
    return replace(base, gated=False, **kw)


def random_keyframes(n: int, num_ws: int = 6, w_dim: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((num_ws, w_dim)).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_generator() -> Generator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, channel_base=64, channel_max=16,
                          mapping_layers=2)
    return Generator(cfg).eval()


# -- parameters ------------------------------------------------------------------------------
def test_parameter_smoothing_follows_its_time_constant_whatever_the_step_size():
    specs = [ParameterSpec("x", 0.0, 10.0, 0.0, smoothing_ms=100.0)]
    coarse, fine = ParameterSet(specs), ParameterSet(specs)
    coarse.set("x", 10.0)
    fine.set("x", 10.0)
    coarse.advance(0.1)
    for _ in range(100):
        fine.advance(0.001)
    expected = 10.0 * (1 - math.exp(-1))      # one time constant: 63 % of the step
    assert coarse.get("x") == pytest.approx(expected, rel=1e-9)
    assert fine.get("x") == pytest.approx(expected, rel=1e-9)
    assert coarse.target("x") == 10.0


def test_one_pole_smoothing_has_one_definition_in_two_forms():
    # the analyzer's envelopes keep ``retain`` of the distance; parameters and mappings cover
    # ``step`` of it: the same smoother, tau in seconds, 0 (or less) follows at once
    for dt_s, tau_s in ((0.005, 0.03), (1 / 60, 0.2), (0.1, 0.1), (0.0, 0.3)):
        assert smoothing_retain(dt_s, tau_s) == math.exp(-dt_s / tau_s)
        assert smoothing_step(dt_s, tau_s) == 1.0 - smoothing_retain(dt_s, tau_s)
    assert smoothing_retain(0.01, 0.0) == 0.0 and smoothing_step(0.01, 0.0) == 1.0
    assert follow(0.0, 1.0, 0.1, attack_ms=100.0, release_ms=0.0) == smoothing_step(0.1, 0.1)
    assert follow(1.0, 0.0, 0.1, attack_ms=100.0, release_ms=0.0) == 0.0


def test_parameter_set_clamps_to_range_and_normalises():
    p = ParameterSet([ParameterSpec("psi", 0.0, 2.0, 0.7)])
    assert p.set("psi", 5.0) == 2.0
    assert p.set_normalised("psi", 0.25) == pytest.approx(0.5)
    p.advance(0.0)       # no smoothing: the value is the target at once
    assert p.get("psi") == pytest.approx(0.5)
    with pytest.raises(KeyError):
        p.set("nope", 1.0)


# -- mappings --------------------------------------------------------------------------------
def test_curves_span_zero_to_one_and_bend_the_right_way():
    for curve in ("linear", "exp", "log"):
        assert apply_curve(0.0, curve) == pytest.approx(0.0)
        assert apply_curve(1.0, curve) == pytest.approx(1.0)
    assert apply_curve(0.5, "linear") == 0.5
    assert apply_curve(0.5, "exp") == pytest.approx((math.e ** 2 - 1) / (math.e ** 4 - 1))
    assert apply_curve(0.5, "exp") < 0.5 < apply_curve(0.5, "log")
    # log is exp's inverse
    assert apply_curve(apply_curve(0.3, "exp"), "log") == pytest.approx(0.3)


def test_envelope_attack_and_release_time_constants():
    up = follow(0.0, 1.0, 0.010, attack_ms=10.0, release_ms=500.0)
    assert up == pytest.approx(1 - math.exp(-1))
    down = follow(1.0, 0.0, 0.5, attack_ms=10.0, release_ms=500.0)
    assert down == pytest.approx(math.exp(-1))
    assert follow(0.2, 0.9, 0.01, 0.0, 100.0) == 0.9     # zero attack: instant


def test_mapping_bank_adds_gain_offset_curve_onto_targets():
    params = ParameterSet([ParameterSpec("flash.amount", 0, 1, 0), ParameterSpec("fader", 0, 1, 0.5)])
    bank = MappingBank([
        Mapping("onset", "flash.amount", gain=0.5, offset=0.1, release_ms=100.0),
        Mapping("param:fader", "flash.amount", gain=0.2, curve="exp"),
    ])
    out = bank.step(frame(onset=True), params, 0.01, 120.0)
    assert out["flash.amount"] == pytest.approx(0.1 + 0.5 + 0.2 * apply_curve(0.5, "exp"))
    out = bank.step(frame(onset=False), params, 0.1, 120.0)   # onset released for one tau
    assert out["flash.amount"] == pytest.approx(0.1 + 0.5 * math.exp(-1) + 0.2 * apply_curve(0.5, "exp"))


def test_lfo_shapes_and_beat_locked_rate():
    assert [lfo_value("square", p) for p in (0.1, 0.6)] == [1.0, 0.0]
    assert lfo_value("tri", 0.25) == pytest.approx(0.5)
    assert lfo_value("sine", 0.5) == pytest.approx(1.0)
    src = parse_source("lfo:saw:4beats")
    assert (src.kind, src.shape, src.rate, src.unit) == ("lfo", "saw", 4.0, "beats")
    params = ParameterSet([ParameterSpec("t", 0, 1, 0)])
    bank = MappingBank([Mapping("lfo:saw:4beats", "t")])
    # at 120 BPM, 4 beats = 2 s: after 0.5 s the saw is a quarter up
    out = bank.step(frame(), params, 0.5, 120.0)
    assert out["t"] == pytest.approx(0.25)
    bank = MappingBank([Mapping("lfo:saw:4beats", "t")])
    assert bank.step(frame(), params, 0.5, 60.0)["t"] == pytest.approx(0.125)
    with pytest.raises(ValueError, match="allowed"):
        parse_source("lfo:wobble:1hz")


def test_tap_tempo_and_tempo_precedence():
    tap = TapTempo(SR)
    assert tap.tap(0) is None
    assert tap.tap(SR // 2) == pytest.approx(120.0)
    assert tap.tap(SR) == pytest.approx(120.0)
    assert tap.tap(SR * 10) is None          # a long pause starts over
    assert effective_tempo(0.0, 100.0) == 100.0
    assert effective_tempo(140.0, 100.0) == 140.0
    assert effective_tempo(0.0, 0.0) == 120.0


# -- latents ---------------------------------------------------------------------------------
def test_slerp_keeps_the_norm_and_hits_the_ends():
    a, b = z_from_seed(1, 64), z_from_seed(2, 64)
    assert np.allclose(slerp(a, b, 0.0), a, atol=1e-5)
    assert np.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert np.linalg.norm(mid) > np.linalg.norm(lerp(a, b, 0.5)) + 0.5
    assert np.array_equal(z_from_seed(7, 8), np.random.RandomState(7).randn(8).astype(np.float32))


def test_truncation_pulls_toward_the_average():
    w, avg = np.ones((2, 3), np.float32), np.zeros(3, np.float32)
    assert np.allclose(truncate(w, avg, 0.5), 0.5)
    assert truncate(w, None, 0.5) is w


def test_layer_rows_cover_every_row_once():
    for num_ws in (4, 6, 10, 14, 18):
        rows = layer_rows(num_ws)
        covered = np.concatenate([np.arange(num_ws)[s] for s in rows.values()])
        assert sorted(covered.tolist()) == list(range(num_ws))
    assert layer_rows(18) == {"coarse": slice(0, 4), "middle": slice(4, 8), "fine": slice(8, 18)}


# -- keyframes from the real generator -------------------------------------------------------
def test_keyframes_from_seeds_slerp_and_files(tiny_generator, tmp_path):
    G = tiny_generator
    mapper = mapper_from_generator(G)
    save_w(tmp_path / "k.npy", np.full(G.w_dim, 0.25, np.float32))
    kf = resolve_keyframes([SeedKeyframe(3), SlerpKeyframe(3, 4, 0.0), SlerpKeyframe(3, 4, 0.5),
                            SavedKeyframe("k.npy")],
                           mapper=mapper, z_dim=G.z_dim, num_ws=G.num_ws, w_dim=G.w_dim,
                           base_dir=tmp_path)
    with torch.no_grad():
        expected = G.mapping(torch.from_numpy(z_from_seed(3, G.z_dim))[None], None)[0].numpy()
    assert kf[0].shape == (G.num_ws, G.w_dim) and kf[0].dtype == np.float32
    assert np.allclose(kf[0], expected, atol=1e-6)
    assert np.allclose(kf[1], kf[0], atol=1e-5)          # slerp t=0 is the first seed
    assert not np.allclose(kf[2], kf[0], atol=1e-3)
    assert np.all(kf[3] == 0.25)                          # [w_dim] broadcast to every layer


# -- the director's modes --------------------------------------------------------------------
def weights(**kw) -> dict[str, float]:
    values = {"mode.volume-blend": 0.0, "mode.onset-step": 0.0, "mode.drift": 0.0,
              "mode.layer-split": 0.0, "psi": 1.0, "noise": 0.0, "speed": 1.0, "blend": 0.0,
              "reactivity": 1.0, "tempo_bpm": 0.0}
    values.update({f"mode.{k.replace('_', '-')}": v for k, v in kw.items()})
    return values


def test_volume_blend_level_zero_is_a_and_one_is_b(tiny_generator):
    G = tiny_generator
    kf = resolve_keyframes([SeedKeyframe(1), SeedKeyframe(2)], mapper=mapper_from_generator(G),
                           z_dim=G.z_dim, num_ws=G.num_ws, w_dim=G.w_dim)
    settings = DirectorSettings(volume_blend=VolumeBlendSettings(attack_ms=0, release_ms=0))
    d = Director(kf, settings)
    v = weights(volume_blend=1.0)
    assert np.array_equal(d.update(v, frame(level=0.0), 0.01).w, kf[0])
    assert np.allclose(d.update(v, frame(level=1.0), 0.01).w, kf[1], atol=1e-6)
    assert np.allclose(d.update(v, frame(level=0.5), 0.01).w, lerp(kf[0], kf[1], 0.5), atol=1e-6)
    # the real generator draws the blended latent
    with torch.no_grad():
        img = G.synthesis(torch.from_numpy(d.last.w)[None], noise_mode="const")
    assert img.shape[-1] == 16 and torch.isfinite(img).all()


def test_volume_blend_is_smoothed_gained_and_curved():
    kf = random_keyframes(2)
    s = DirectorSettings(volume_blend=VolumeBlendSettings(gain=2.0, curve="exp", attack_ms=50.0))
    d = Director(kf, s)
    out = d.update(weights(volume_blend=1.0), frame(level=0.5), 0.05)
    env = 0.5 * (1 - math.exp(-1))       # one attack time constant
    x = min(2.0 * apply_curve(env, "exp"), 1.0)
    assert np.allclose(out.w, lerp(kf[0], kf[1], x), atol=1e-6)


def test_onset_step_reaches_the_next_keyframe_after_its_length():
    kf = random_keyframes(3)
    s = DirectorSettings(onset_step=OnsetStepSettings(length=2, unit="beats", every=2))
    d = Director(kf, s)
    v = weights(onset_step=1.0)
    v["tempo_bpm"] = 120.0        # 2 beats = 1 s
    assert np.array_equal(d.update(v, frame(onset=True), 0.01).w, kf[0])   # 1st onset: not Nth
    out = d.update(v, frame(onset=True), 0.01)                               # 2nd: starts
    assert out.keyframe == 1 and np.array_equal(out.w, kf[0])
    mid = d.update(v, frame(), 0.5)
    assert np.allclose(mid.w, lerp(kf[0], kf[1], ease(0.5)), atol=1e-6)
    assert not np.allclose(mid.w, kf[1])
    assert np.array_equal(d.update(v, frame(), 0.5).w, kf[1])


def test_onset_step_length_in_ms_and_beat_trigger():
    kf = random_keyframes(2)
    d = Director(kf, DirectorSettings(onset_step=OnsetStepSettings(trigger="beat", length=200, unit="ms")))
    v = weights(onset_step=1.0)
    d.update(v, frame(onset=True), 0.0)            # onsets do not count for a beat trigger
    assert d.state.index == 0
    d.update(v, frame(beat=True), 0.0)
    assert np.array_equal(d.update(v, frame(), 0.2).w, kf[1])


def test_drift_period_in_beats_follows_tempo():
    kf = random_keyframes(4)
    d = Director(kf, DirectorSettings(drift=DriftSettings(period=4, unit="beats", level_speed=0.0)))
    v = weights(drift=1.0)
    v["tempo_bpm"] = 120.0     # 4 beats per keyframe = 2 s
    assert np.allclose(d.update(v, frame(), 1.0).w, lerp(kf[0], kf[1], 0.5), atol=1e-6)
    assert np.allclose(d.update(v, frame(), 1.0).w, kf[1], atol=1e-6)
    v["tempo_bpm"] = 60.0      # half the tempo: 4 s per keyframe
    assert np.allclose(d.update(v, frame(), 2.0).w, lerp(kf[1], kf[2], 0.5), atol=1e-6)
    # the analyzer's tempo is used when the performer sets none
    d2 = Director(kf, DirectorSettings(drift=DriftSettings(period=4, unit="beats", level_speed=0.0)))
    assert np.allclose(d2.update(weights(drift=1.0), frame(tempo_bpm=240.0), 1.0).w, kf[1], atol=1e-6)


def test_drift_speeds_up_with_level_and_loops():
    kf = random_keyframes(2)
    d = Director(kf, DirectorSettings(drift=DriftSettings(period=1, unit="seconds", level_speed=1.0)))
    d.update(weights(drift=1.0), frame(level=1.0), 0.5)    # speed x2: a whole keyframe
    assert d.state.drift_pos == pytest.approx(1.0)
    d.update(weights(drift=1.0), frame(level=1.0), 0.5)
    assert d.state.drift_pos == pytest.approx(0.0)         # looped back to A


def test_layer_split_only_changes_the_targeted_rows():
    kf = random_keyframes(4, num_ws=18)
    groups = {"coarse": LayerGroupSettings(source="low", keyframe=1, attack_ms=0),
              "middle": LayerGroupSettings(source="mid", keyframe=2, attack_ms=0),
              "fine": LayerGroupSettings(source="high", keyframe=3, attack_ms=0)}
    d = Director(kf, DirectorSettings(layer_split=LayerSplitSettings(**groups)))
    out = d.update(weights(layer_split=1.0), frame(low=1.0), 0.01)      # bass only
    assert np.allclose(out.w[0:4], kf[1][0:4])
    assert np.array_equal(out.w[4:], kf[0][4:])
    d = Director(kf, DirectorSettings(layer_split=LayerSplitSettings(**groups)))
    out = d.update(weights(layer_split=1.0), frame(high=0.5), 0.01)      # treble only
    assert np.array_equal(out.w[:8], kf[0][:8])
    assert np.allclose(out.w[8:], lerp(kf[0][8:], kf[3][8:], 0.5), atol=1e-6)
    assert np.array_equal(kf[0], random_keyframes(4, num_ws=18)[0])     # keyframes untouched


def test_noise_kicks_on_onsets_and_psi_truncates():
    kf = random_keyframes(1)
    avg = np.zeros(kf[0].shape[1], np.float32)
    d = Director(kf, w_avg=avg)
    v = weights()
    v.update(noise=0.2, psi=0.5)
    out = d.update(v, frame(onset=True), 0.01)
    assert out.noise_strength == pytest.approx(0.2 + 0.5) and out.noise_seed == 1
    assert np.allclose(out.w, 0.5 * kf[0]) and np.array_equal(out.w_raw, kf[0])
    out = d.update(v, frame(), 0.2)        # one decay time constant later
    assert out.noise_strength == pytest.approx(0.2 + 0.5 * math.exp(-1))


def test_director_is_deterministic():
    kf = random_keyframes(3)
    frames = [frame(i * 512, level=(i % 7) / 7, onset=i % 5 == 0, low=(i % 3) / 3) for i in range(200)]

    def run():
        d = Director([k.copy() for k in kf], DirectorSettings())
        v = weights(volume_blend=0.5, onset_step=1.0, drift=0.3, layer_split=0.5)
        return [d.update(v, f, 512 / SR).w for f in frames][-1]

    assert np.array_equal(run(), run())


def test_crossfade_between_two_outputs():
    kf = random_keyframes(2)
    a = Director([kf[0]]).update(weights(), frame(), 0.01)
    b = Director([kf[1]]).update(weights(), frame(), 0.01)
    assert np.array_equal(crossfade(a, b, 0.0).w, kf[0])
    assert np.allclose(crossfade(a, b, 1.0).w, kf[1])
    assert np.allclose(crossfade(a, b, 0.5).w, lerp(kf[0], kf[1], 0.5), atol=1e-6)
