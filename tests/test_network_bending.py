"""Network bending (issue 14): each feature-map op against a direct tensor computation, the
``bend:`` preset schema and its parameters (OSC targets), and bent frames through the
FrameGenerator — batched with different values per frame, exactly as one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from phosphene.errors import PhospheneError
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.show.bending import BEND_OPS, Bend
from phosphene.live.show.director import LatentRequest
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.show import GeneratorFacts, Show
from live_engine_helpers import random_generator
from phosphene.models.stylegan2 import GeneratorConfig
from phosphene.models.stylegan2.bending import OPS, FeatureBend, resolve_channels

SR = 48000


def features(n=2, c=6, size=8, seed=0):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def bend(op, n=2, channels=slice(0, None), options=None, **values):
    params = {k: torch.full((n,), float(v)) if np.isscalar(v)
              else torch.tensor(v, dtype=torch.float32) for k, v in values.items()}
    return FeatureBend(op, channels, params, options or {})


# -- each op is a direct tensor computation ----------------------------------------------------
@pytest.mark.parametrize("axis,dims", [("h", (-1,)), ("v", (-2,)), ("both", (-2, -1))])
def test_flip_is_torch_flip(axis, dims):
    x = features()
    assert torch.equal(bend("flip", options={"axis": axis}, amount=1.0)(x), torch.flip(x, dims))


def test_ablate_zeros_exactly_the_channels_named():
    x = features()
    out = bend("ablate", channels=resolve_channels((1, 4), 6), amount=1.0)(x)
    assert torch.equal(out[:, [1, 4]], torch.zeros_like(out[:, [1, 4]]))
    keep = [0, 2, 3, 5]
    assert torch.equal(out[:, keep], x[:, keep])


def test_invert_negates_and_a_range_of_channels_is_the_range():
    x = features()
    out = bend("invert", channels=resolve_channels("2-3", 6), amount=1.0)(x)
    assert torch.equal(out[:, 2:4], -x[:, 2:4])
    assert torch.equal(out[:, [0, 1, 4, 5]], x[:, [0, 1, 4, 5]])


def test_erode_and_dilate_are_min_and_max_filters():
    x = features()
    assert torch.equal(bend("erode", size=3.0)(x), -F.max_pool2d(-x, 3, stride=1, padding=1))
    assert torch.equal(bend("dilate", size=5.0)(x), F.max_pool2d(x, 5, stride=1, padding=2))
    # sizes round to the nearest odd integer; 1 is the identity
    assert torch.equal(bend("dilate", size=1.9)(x), x)
    assert torch.equal(bend("dilate", size=3.6)(x), F.max_pool2d(x, 3, stride=1, padding=1))


def test_translate_by_whole_pixels_is_roll():
    x = features()
    # 2 pixels right, 1 up on an 8x8 map; wrap: what leaves one edge comes in at the other
    out = bend("translate", x=2 / 8, y=-1 / 8, options={"edge": "wrap"})(x)
    torch.testing.assert_close(out, torch.roll(x, shifts=(-1, 2), dims=(-2, -1)),
                               atol=1e-5, rtol=0)
    # zeros: what comes in is zero
    out = bend("translate", x=2 / 8, y=0.0, options={"edge": "zeros"})(x)
    shifted = torch.zeros_like(x)
    shifted[..., 2:] = x[..., :-2]
    torch.testing.assert_close(out, shifted, atol=1e-5, rtol=0)


def test_rotate_zero_is_the_identity_and_ninety_degrees_is_rot90():
    x = features()
    assert torch.equal(bend("rotate", angle=0.0)(x), x)
    assert torch.equal(bend("rotate", angle=360.0)(x), x)
    # counter-clockwise on screen (row 0 at the top): numpy's / torch's rot90
    torch.testing.assert_close(bend("rotate", angle=90.0, options={"edge": "zeros"})(x),
                               torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_scale_is_a_zoom_about_the_centre():
    x = features()
    assert torch.equal(bend("scale", factor=1.0)(x), x)
    out = bend("scale", factor=2.0)(x)
    centre = F.interpolate(x[..., 2:6, 2:6], scale_factor=2, mode="bilinear", align_corners=False)
    # inside the edge pixels (where interpolate clamps to the crop) the two agree
    torch.testing.assert_close(out[..., 1:-1, 1:-1], centre[..., 1:-1, 1:-1], atol=1e-5, rtol=0)


def test_per_sample_parameters_equal_each_sample_alone():
    x = features(n=3)
    for op, values in (("rotate", {"angle": [0.0, 30.0, -75.0]}),
                       ("translate", {"x": [0.1, 0.0, -0.3], "y": [0.0, 0.0, 0.25]}),
                       ("dilate", {"size": [1.0, 3.0, 5.0]}),
                       ("invert", {"amount": [0.0, 0.5, 1.0]})):
        batched = bend(op, n=3, **values)(x)
        for i in range(3):
            alone = bend(op, n=1, **{k: [v[i]] for k, v in values.items()})(x[i:i + 1])
            assert torch.equal(batched[i:i + 1], alone), (op, i)
        # a sample at the op's identity keeps its exact bits
        if op in ("rotate", "dilate", "invert"):
            assert torch.equal(batched[0], x[0])


def test_ops_keep_the_dtype_and_layout_of_fp16_blocks():
    """fp16 blocks (CUDA) hand over half-precision, channels-last features: every op returns
    them in kind, close to the fp32 result, and untouched samples keep their bits."""
    x = features(c=8, size=16).half().contiguous(memory_format=torch.channels_last)
    identity = {"x": 0.0, "y": 0.0, "angle": 0.0, "factor": 1.0, "size": 1.0, "amount": 0.0}
    for op, (params, _) in BEND_OPS.items():
        # sample 0 bent (somewhere inside the range), sample 1 at the op's identity
        values = {p.name: [0.6 * p.maximum + 0.4 * p.minimum, identity[p.name]] for p in params}
        for channels in ("all", "2-5", (1, 6)):
            sel = resolve_channels(channels, 8)
            half = bend(op, channels=sel, **values)(x)
            full = bend(op, channels=sel, **values)(x.float().contiguous())
            assert half.dtype == torch.float16 and half.shape == x.shape, op
            assert torch.equal(half[1], x[1]), op
            torch.testing.assert_close(half.float(), full, atol=1e-2, rtol=1e-2)


def test_every_op_takes_the_parameters_the_preset_schema_names():
    for op, (params, options) in BEND_OPS.items():
        assert OPS[op].params == tuple(p.name for p in params)
        assert OPS[op].options == options


def test_channels_resolve_and_out_of_range_is_an_error():
    assert resolve_channels("all", 64) == slice(0, 64)
    assert resolve_channels("0-15", 64) == slice(0, 16)
    assert resolve_channels(0.25, 64) == slice(0, 16)
    assert torch.equal(resolve_channels((0, 5, 7), 64), torch.tensor([0, 5, 7]))
    with pytest.raises(PhospheneError, match=r"bend\[0\].channels: channel 70 is out of range"):
        resolve_channels((3, 70), 64, where="bend[0].channels")
    with pytest.raises(PhospheneError, match="past the last channel"):
        resolve_channels("32-64", 64)


# -- presets -----------------------------------------------------------------------------------
BENT = """\
name: bent
keyframes: [{seed: 1}, {seed: 2}]
bend:
  - {op: rotate, at: 16, channels: "0-15", angle: 40}
  - {op: translate, at: 8, channels: 0.5, x: 0.25, edge: zeros}
  - {op: ablate, at: 32, channels: [1, 3]}
parameters:
  bend.0.angle: {min: -90, max: 90}
mappings:
  - {source: level, target: bend.0.angle, gain: 30}
"""


def preset(text=BENT, **changes):
    data = yaml.safe_load(text)
    data.update(changes)
    return parse_preset(data)


def test_bend_parameters_are_parameters_and_osc_targets():
    p = preset()
    specs = p.parameter_specs()
    assert (specs["bend.0.angle"].minimum, specs["bend.0.angle"].maximum,
            specs["bend.0.angle"].default) == (-90.0, 90.0, 40.0)
    assert specs["bend.1.x"].default == 0.25 and specs["bend.1.y"].default == 0.0
    assert specs["bend.2.amount"].default == 1.0
    context = routes.NamespaceContext(parameters=specs, effects=frozenset())
    route, args = routes.validate("/phosphene/param/bend.0.angle", [45.0], context)
    assert args == (45.0,)
    with pytest.raises(routes.Rejected, match="unknown parameter 'bend.0.angel'"):
        routes.validate("/phosphene/param/bend.0.angel", [45.0], context)


@pytest.mark.parametrize("entry,message", [
    ({"op": "rotate", "at": 32, "angel": 3}, "bend[0]: unknown key 'angel' for op rotate; "
                                             "allowed: op, at, channels, edge, angle"),
    ({"op": "spin", "at": 32}, "bend[0]: op 'spin' is not a bend op"),
    ({"op": "rotate", "at": 33}, "bend[0].at: 33 is not a block resolution"),
    ({"op": "rotate", "at": 32, "channels": 5}, "for one channel write a list [5]"),
    ({"op": "flip", "at": 32, "edge": "wrap"}, "unknown key 'edge' for op flip"),
    ({"op": "rotate", "at": 32, "angle": "lots"}, "angle must be a number"),
])
def test_a_bad_bend_is_one_clear_error_naming_the_key(entry, message):
    with pytest.raises(PhospheneError) as info:
        preset(bend=[entry], mappings=[], parameters={})
    assert message in str(info.value)


def test_a_bent_preset_round_trips_through_its_yaml():
    from phosphene.live.show.show import preset_to_yaml

    p = preset()
    text = preset_to_yaml(p)
    assert "angle: 40.0" in text and "params" not in text
    assert parse_preset(yaml.safe_load(text)) == p


# -- frames --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def G():
    return random_generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=32,
                                            channel_base=256, channel_max=32, mapping_layers=2),
                            3, noise_strength=0.3)


def show_for(G, p):
    return Show(p, GeneratorFacts.from_generator(G), SR)


def test_a_bent_preset_renders_differently_and_the_parameters_move_the_bend(G):
    gen = FrameGenerator(G, "cpu", max_batch=4)
    show = show_for(G, preset())
    request = show.state().request
    assert [b.op for b in request.bends] == ["rotate", "translate", "ablate"]
    assert request.bends[0].values == (40.0,)
    unbent = show_for(G, preset(bend=[], mappings=[], parameters={})).state().request
    assert unbent.bends == () and np.array_equal(unbent.w, request.w)
    bent, plain = gen.generate(request), gen.generate(unbent)
    assert (bent - plain).abs().max() > 0.05

    # a parameter set over OSC moves the bend in the next request
    show.set_parameter("bend.0.angle", -60.0, immediate=True)
    show.advance(FeatureFrame.silent(512, SR))
    assert show.state().request.bends[0].values == (-60.0,)
    assert not torch.equal(gen.generate(show.state().request), bent)


def test_identity_values_give_the_unbent_frame_exactly(G):
    gen = FrameGenerator(G, "cpu", max_batch=4)
    neutral = preset(bend=[{"op": "rotate", "at": 16, "angle": 0},
                           {"op": "invert", "at": 8, "amount": 0}], mappings=[], parameters={})
    bent = show_for(G, neutral).state().request
    plain = show_for(G, preset(bend=[], mappings=[], parameters={})).state().request
    assert bent.bends and torch.equal(gen.generate(bent), gen.generate(plain))


def requests_with(G, values, noise_seeds=(1, 2, 3, 4)):
    """Requests of the bent preset with the rotate angle / translate x given per frame."""
    show = show_for(G, preset())
    base = show.state().request
    out = []
    for (angle, x), seed in zip(values, noise_seeds):
        bends = (Bend(0, "rotate", 16, "0-15", (("edge", "wrap"),), (angle,)),
                 Bend(1, "translate", 8, 0.5, (("edge", "zeros"),), (x, 0.0)),
                 base.bends[2])
        out.append(LatentRequest(sample_index=0, w=base.w, w_raw=base.w_raw, truncation_psi=1.0,
                                 noise_strength=0.7, noise_seed=seed, keyframe=0, bends=bends))
    return out


def test_a_batch_with_different_bend_values_equals_frames_one_by_one(G):
    gen = FrameGenerator(G, "cpu", max_batch=4)
    requests = requests_with(G, [(0.0, 0.0), (30.0, 0.1), (-45.0, 0.0), (90.0, -0.4)])
    batched = gen.generate(requests)
    alone = torch.cat([gen.generate(r) for r in requests])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    # the values did change the frames
    assert min((batched[i] - batched[0]).abs().max() for i in range(1, 4)) > 1e-3


def test_requests_that_bend_differently_render_in_order(G):
    gen = FrameGenerator(G, "cpu", max_batch=4)
    bent = requests_with(G, [(30.0, 0.1), (60.0, 0.2)])
    plain = [LatentRequest(sample_index=0, w=r.w, w_raw=r.w_raw, truncation_psi=1.0,
                           noise_strength=0.7, noise_seed=9, keyframe=0) for r in bent]
    mixed = [bent[0], plain[0], bent[1], plain[1]]   # a preset crossfade's batch, say
    out = gen.generate(mixed)
    for i, r in enumerate(mixed):
        torch.testing.assert_close(out[i:i + 1], gen.generate(r), atol=1e-5, rtol=0)


def test_a_bend_the_model_cannot_take_is_said_at_start(G):
    gen = FrameGenerator(G, "cpu", max_batch=1)
    request = show_for(G, preset(bend=[{"op": "rotate", "at": 64, "angle": 10}], mappings=[],
                                 parameters={})).state().request
    with pytest.raises(PhospheneError, match=r"bend\[0\].at: .* has no 64x64 block; its blocks: "
                                             r"4, 8, 16, 32"):
        gen.prepare(request)
    request = show_for(G, preset(bend=[{"op": "ablate", "at": 8, "channels": [40]}], mappings=[],
                                 parameters={})).state().request
    with pytest.raises(PhospheneError, match=r"bend\[0\].channels \(8x8 block\): channel 40 is "
                                             r"out of range: this block has 32 channels"):
        gen.generate(request)


def test_a_session_replays_the_same_bends_and_batched_frames_match(G, tmp_path):
    """The offline path without GL: a session over clicks, an OSC bend change and a mapping
    from the level; run twice, the requests (bends included) are the same, and the frames
    rendered in batches of 4 equal those rendered one by one."""
    from phosphene.live.runtime.offline import ShowTimeline
    from phosphene.live.runtime.session import Session, ShowSource
    from phosphene.live.show.events import ControlEvent

    clicks = np.zeros(SR, np.float32)
    for t in (0.1, 0.4, 0.7):
        clicks[int(t * SR):int(t * SR) + 400] = 0.8
    p = preset()
    events = [ControlEvent(int(0.5 * SR), "/phosphene/param/bend.1.x", (-0.3,))]

    def run():
        session = Session(ShowSource(p, tmp_path, "in-memory"), SR,
                          FrameGenerator(G, "cpu", max_batch=4))
        timeline = ShowTimeline(clicks, session, events)
        return [timeline.state_at(int(k * SR / 10)).request for k in range(10)]

    first, second = run(), run()
    assert [r.bends for r in first] == [r.bends for r in second]
    assert len({r.bends[0].values for r in first}) > 2          # the level moved the angle
    assert first[-1].bends[1].values[0] == pytest.approx(-0.3, abs=0.02)   # the OSC value
    gen = FrameGenerator(G, "cpu", max_batch=4)
    batched = gen.generate(first)
    alone = torch.cat([gen.generate(r) for r in second])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_a_preset_crossfade_glides_between_bend_values(G):
    show = show_for(G, preset())
    target = preset(bend=[{"op": "rotate", "at": 16, "channels": "0-15", "angle": -40},
                          {"op": "translate", "at": 8, "channels": 0.5, "x": 0.25,
                           "edge": "zeros"},
                          {"op": "ablate", "at": 32, "channels": [1, 3]}], mappings=[])
    show.switch_preset(target, crossfade_s=1.0)
    angles = []
    for k in range(1, 12):
        show.advance(FeatureFrame.silent(k * 4800, SR))
        angles.append(show.state().request.bends[0].values[0])
    assert angles[-1] == -40.0 and 39.0 > angles[3] > -39.0    # between the two, not a jump
