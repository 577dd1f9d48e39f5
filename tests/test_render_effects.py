"""The effect chain on a headless EGL context (Mesa llvmpipe): known pictures in, pixels checked.

Expected values are computed here from the standard sRGB transfer function, independently of the
shader code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phosphene.errors import PhospheneError
from phosphene.render.chain import EffectChain
from phosphene.render.context import create_headless_context
from phosphene.render.effects import BUILTIN_ORDER, builtin_effects, crossfade_position
from phosphene.render.headless import HeadlessRenderer

W, H = 96, 54  # a small 16:9 canvas keeps llvmpipe fast


def decode(v):
    """sRGB byte(s) -> linear light."""
    c = np.asarray(v, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def encode(lin):
    """linear light -> sRGB byte(s)."""
    c = np.clip(np.asarray(lin, np.float64), 0.0, 1.0)
    s = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.round(s * 255.0)


def solid(rgb, w=W, h=H):
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def pattern(w=W, h=H):
    """A smooth, asymmetric colour field (no hard edges, so filtering is not under test)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 40 + 180 * x / w
    g = 30 + 200 * y / h
    b = 60 + 120 * (0.5 + 0.5 * np.sin(x / w * 5.0 + y / h * 2.0))
    return np.stack([r, g, b], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def ctx():
    c = create_headless_context()
    yield c
    c.release()


def render(ctx, effects, frame, params=None, size=(W, H), **kwargs):
    chain = EffectChain.from_names(ctx, effects, size=size, **kwargs)
    try:
        chain.push_frame(frame)
        if params:
            chain.set_params(params)
        chain.render()
        return chain.read().astype(np.int32)
    finally:
        chain.release()


def test_source_pass_reproduces_the_frame_exactly(ctx):
    img = pattern()
    out = render(ctx, [], img)
    assert np.abs(out - img).max() <= 1


@pytest.mark.parametrize("name", [n for n in BUILTIN_ORDER if n != "output"])
def test_every_effect_at_its_defaults_is_the_identity(ctx, name):
    img = pattern()
    out = render(ctx, [name], img)
    assert np.abs(out - img).max() <= 1, name


def test_builtin_effects_declare_sane_params():
    specs = builtin_effects()
    assert [s.name for s in specs] == list(BUILTIN_ORDER)
    for s in specs:
        assert s.doc
        for p in s.params:
            assert p.minimum <= p.default <= p.maximum


@pytest.mark.parametrize("amount", [0.1, 0.25, 0.5])
def test_flash_adds_the_set_amount_of_light(ctx, amount):
    grey = 100
    out = render(ctx, ["flash"], solid((grey, grey, grey)), {"flash.amount": amount})
    expected = encode(decode(grey) + amount)
    assert np.abs(out - expected).max() <= 1
    assert out.mean() > grey + 20  # visibly brighter


def test_flash_invert_gives_the_negative(ctx):
    out = render(ctx, ["flash"], solid((100, 30, 220)), {"flash.invert": 1.0})
    assert np.abs(out[H // 2, W // 2] - [155, 225, 35]).max() <= 1


@pytest.mark.parametrize("hue, expected", [(120, (0, 255, 0)), (-120, (0, 0, 255)),
                                           (240, None)])
def test_hue_rotation_of_pure_red(ctx, hue, expected):
    if expected is None:  # out of range: clamped to 180 -> cyan
        expected = (0, 255, 255)
    out = render(ctx, ["color"], solid((255, 0, 0)), {"color.hue": hue})
    assert np.abs(out - expected).max() <= 1


def test_saturation_zero_is_grey_and_contrast_zero_is_mid_grey(ctx):
    img = pattern()
    grey = render(ctx, ["color"], img, {"color.saturation": 0.0})
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1
    assert np.abs(grey[..., 1] - grey[..., 2]).max() <= 1
    flat = render(ctx, ["color"], img, {"color.contrast": 0.0})
    assert np.abs(flat - 128).max() <= 1


def test_brightness_adds_on_the_display_scale(ctx):
    out = render(ctx, ["color"], solid((100, 100, 100)), {"color.brightness": 0.1})
    assert np.abs(out - 125.5).max() <= 1


def test_crossfade_is_the_linear_light_mix_it_claims(ctx):
    a, b = (200, 40, 10), (20, 90, 240)
    chain = EffectChain.from_names(ctx, ["crossfade"], size=(W, H))
    chain.push_frame(solid(a))
    chain.push_frame(solid(b))
    for position in (0.0, 0.25, 0.5, 1.0):
        chain.set_params({"crossfade.position": position})
        chain.render()
        out = chain.read().astype(int)
        expected = encode((1 - position) * decode(a) + position * decode(b))
        assert np.abs(out - expected).max() <= 1, position
    chain.release()
    assert crossfade_position(0.05, 0.1) == 0.5
    assert crossfade_position(1.0, 0.1) == 1.0


def test_letterbox_puts_bars_left_and_right_of_a_square_frame(ctx):
    out = render(ctx, [], solid((250, 250, 250), 64, 64), size=(160, 90))
    bar = (160 - 90) // 2  # 35 columns each side
    assert out[:, :bar - 1].max() == 0 and out[:, 160 - bar + 1:].max() == 0
    assert (out[:, bar + 1:160 - bar - 1] == 250).all()


def test_letterbox_puts_bars_above_and_below_a_wide_frame(ctx):
    out = render(ctx, [], solid((250, 250, 250), 128, 32), size=(96, 54))
    # 4:1 frame on a 96-wide canvas is 24 rows tall: 15 rows of bar above and below
    assert out[:14].max() == 0 and out[-14:].max() == 0
    assert (out[16:38] == 250).all()


def test_crop_fills_the_canvas_and_cuts_top_and_bottom(ctx):
    frame = solid((0, 200, 0), 64, 64)
    frame[:8] = 255  # a white band at the top: 12.5% of the height, inside the cut 21.875%
    out = render(ctx, [], frame, size=(160, 90), fit="crop")
    assert (out[..., 1] >= 199).all()       # no bars anywhere
    assert out[..., 0].max() == 0          # the white band was cut away
    stretched = render(ctx, [], frame, size=(160, 90), fit="stretch")
    assert (stretched[0] == 255).all() and (stretched[:, 0, 1] >= 199).all()


def test_scaling_filters(ctx):
    checker = np.zeros((2, 2, 3), np.uint8)
    checker[0, 0] = checker[1, 1] = 255
    nearest = render(ctx, [], checker, size=(64, 64), filter="nearest")
    assert set(np.unique(nearest)) == {0, 255}
    assert (nearest[:32, :32] == 255).all() and (nearest[:32, 32:] == 0).all()
    linear = render(ctx, [], checker, size=(64, 64), filter="linear")
    assert len(np.unique(linear)) > 10
    bicubic = render(ctx, [], checker, size=(64, 64), filter="bicubic")
    assert len(np.unique(bicubic)) > 10 and not np.array_equal(bicubic, linear)
    flat = render(ctx, [], solid((90, 150, 210), 8, 8), size=(64, 64), filter="bicubic")
    assert np.abs(flat - (90, 150, 210)).max() <= 1  # weights sum to one


def quadrants(n=64):
    img = np.zeros((n, n, 3), np.uint8)
    h = n // 2
    img[:h, :h] = (255, 0, 0)      # top-left red
    img[:h, h:] = (0, 255, 0)      # top-right green
    img[h:, :h] = (0, 0, 255)      # bottom-left blue
    img[h:, h:] = (255, 255, 255)  # bottom-right white
    return img


def test_transform_rotates_clockwise_zooms_and_shifts(ctx):
    q = quadrants()
    turned = render(ctx, ["transform"], q, {"transform.rotate": 90.0}, size=(64, 64))
    assert tuple(turned[16, 16]) == (0, 0, 255)      # bottom-left swung up to top-left
    assert tuple(turned[16, 48]) == (255, 0, 0)      # top-left moved to top-right
    zoomed = render(ctx, ["transform"], q, {"transform.zoom": 2.0}, size=(64, 64))
    assert tuple(zoomed[2, 2]) == (255, 0, 0) and tuple(zoomed[30, 30]) == (255, 0, 0)
    assert tuple(zoomed[34, 34]) == (255, 255, 255)
    shifted = render(ctx, ["transform"], q, {"transform.x": 0.25}, size=(64, 64))
    assert tuple(shifted[16, 40]) == (255, 0, 0)     # red now reaches 3/4 of the width
    assert tuple(shifted[16, 60]) == (0, 255, 0)


def test_feedback_leaves_a_decaying_trail(ctx):
    dot = np.zeros((H, W, 3), np.uint8)
    dot[20:34, 40:56] = 255
    black = np.zeros_like(dot)
    for decay in (0.0, 0.5):
        chain = EffectChain.from_names(ctx, ["feedback"], size=(W, H))
        chain.set_params({"feedback.decay": decay})
        chain.push_frame(dot)
        chain.render()
        chain.push_frame(black)
        chain.render()
        first = chain.read().astype(int)
        chain.render()
        second = chain.read().astype(int)
        chain.release()
        assert np.abs(first[27, 48] - encode(decay)).max() <= 1
        assert np.abs(second[27, 48] - encode(decay * decay)).max() <= 1
        assert first[5, 5].max() == 0


def test_chroma_splits_red_and_blue_away_from_the_centre(ctx):
    img = np.zeros((H, W, 3), np.uint8)
    img[:, 80:86] = 255  # a white bar near the right edge
    out = render(ctx, ["chroma"], img, {"chroma.amount": 0.05})
    row = out[H // 2]
    red_cols = np.nonzero(row[:, 0] > 128)[0]
    blue_cols = np.nonzero(row[:, 2] > 128)[0]
    green_cols = np.nonzero(row[:, 1] > 128)[0]
    assert red_cols.mean() < green_cols.mean() < blue_cols.mean()


def test_mirror_and_kaleidoscope_are_symmetric(ctx):
    q = quadrants()
    mirrored = render(ctx, ["mirror"], q, {"mirror.horizontal": 1.0}, size=(64, 64))
    assert tuple(mirrored[16, 48]) == (255, 0, 0) and tuple(mirrored[48, 48]) == (0, 0, 255)
    img = pattern(64, 64)
    for segments in (2, 6):
        k = render(ctx, ["mirror"], img, {"mirror.segments": segments}, size=(64, 64))
        assert np.abs(k - k[::-1]).max() <= 2, segments  # folded about the horizontal
        assert np.abs(k - img).max() > 20


def test_vignette_darkens_corners_not_the_centre(ctx):
    out = render(ctx, ["vignette"], solid((200, 200, 200)),
                 {"vignette.amount": 1.0, "vignette.radius": 0.9, "vignette.softness": 0.4})
    assert np.abs(out[H // 2, W // 2] - 200).max() <= 1
    assert out[0, 0].max() <= 10 and out[-1, -1].max() <= 10


def test_output_fade_and_dither(ctx):
    half = render(ctx, [], solid((180, 180, 180)), {"output.fade": 0.5})
    assert np.abs(half - encode(0.5 * decode(180))).max() <= 1
    black = render(ctx, [], solid((180, 180, 180)), {"output.fade": 1.0})
    assert black.max() == 0
    smooth = np.repeat(np.linspace(0, 40, W)[None, :, None], H, 0).repeat(3, 2).astype(np.uint8)
    dithered = render(ctx, [], smooth, {"output.dither": 1.0})
    assert np.abs(dithered - smooth).max() <= 1 and not np.array_equal(dithered, smooth)


def test_frame_formats_give_the_same_picture(ctx):
    img = pattern()
    as_float = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    from_u8 = render(ctx, [], img)
    assert np.abs(render(ctx, [], as_float) - from_u8).max() <= 1
    assert np.abs(render(ctx, [], as_float.numpy()) - from_u8).max() <= 1
    assert np.abs(render(ctx, [], as_float[0].double()) - from_u8).max() <= 1
    assert np.abs(render(ctx, [], torch.from_numpy(img)) - from_u8).max() <= 1
    rgba = np.concatenate([img, np.full((H, W, 1), 255, np.uint8)], -1)
    assert np.abs(render(ctx, [], rgba) - from_u8).max() <= 1
    clipped = render(ctx, [], torch.full((1, 3, H, W), 3.0))  # out of range: clipped to white
    assert (clipped == 255).all()


def test_frame_converter_reuses_its_buffers():
    from phosphene.render.upload import FrameConverter

    conv = FrameConverter()
    a = conv(torch.zeros(1, 3, 8, 8))
    b = conv(torch.ones(1, 3, 8, 8))
    assert a is b and (b == 255).all()  # same array object, new contents
    assert (conv(torch.full((1, 3, 8, 8), -1.0)) == 0).all()


@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 3, 8, 8), np.float32), "N=1"),
    (np.zeros((8, 8, 5), np.uint8), "HWC"),
    (np.zeros((3, 8, 8), np.int32), "dtype"),
    (torch.zeros(1, 2, 8, 8), "3 or 4 channels"),
])
def test_bad_frames_are_rejected_with_the_shape(ctx, bad, words):
    chain = EffectChain.from_names(ctx, [], size=(16, 16))
    with pytest.raises(PhospheneError, match=words):
        chain.push_frame(bad)
    chain.release()


def test_parameters_by_name_clamped_and_validated(ctx):
    chain = EffectChain.from_names(
        ctx, ["kick=transform", {"name": "flash", "params": {"amount": 0.3}}, "color",
              {"effect": "color", "as": "grade", "params": {"hue": 10}},
              {"name": "vignette", "enabled": False}],
        size=(16, 16))
    params = chain.get_params()
    assert params["flash.amount"] == 0.3 and params["kick.zoom"] == 1.0
    assert "output.fade" in params and chain.effect_names[-1] == "output"
    assert params["grade.hue"] == 10
    # a preset entry with enabled: false is in the chain (its parameters too), switched off
    assert "vignette.amount" in params and chain.enabled["vignette"] is False
    assert chain.is_enabled("flash")
    chain.set_params({"color.hue": 999.0, "flash.amount": float("nan")})
    assert chain.get_params()["color.hue"] == 180.0
    assert chain.get_params()["flash.amount"] == 0.3  # NaN ignored
    with pytest.raises(PhospheneError, match="unknown effect parameter 'flash.amout'.*flash.amount"):
        chain.set_params({"flash.amout": 1.0})
    chain.release()
    with pytest.raises(PhospheneError, match="appears twice"):
        EffectChain.from_names(ctx, ["flash", "flash"], size=(16, 16))
    with pytest.raises(PhospheneError, match="unknown effect 'sparkle'"):
        EffectChain.from_names(ctx, ["sparkle"], size=(16, 16))
    with pytest.raises(PhospheneError, match="output"):
        EffectChain.from_names(ctx, ["output", "flash"], size=(16, 16))
    with pytest.raises(PhospheneError, match="no parameter 'amt'"):
        EffectChain.from_names(ctx, [{"name": "flash", "params": {"amt": 1}}], size=(16, 16))


def test_params_change_the_next_frame_without_a_new_generator_frame(ctx):
    chain = EffectChain.from_names(ctx, ["flash"], size=(16, 16))
    chain.push_frame(solid((50, 50, 50), 16, 16))
    chain.render()
    before = chain.read().copy()
    chain.set_params({"flash.amount": 0.5})
    chain.render()  # same generator frame, next display frame
    assert chain.read().mean() > before.mean() + 50
    chain.release()


def shot(chain):
    """Render one display frame and read it back as ints."""
    chain.render()
    return chain.read().astype(int)


def _programs(chain):
    """The GL program names of every pass: a recompile would give new ones."""
    return [stage.program.glo for stage in chain._stages]


def test_switching_an_effect_off_is_the_identity_and_on_restores_it(ctx):
    img = pattern(32, 32)
    chain = EffectChain.from_names(ctx, ["color", "flash"], size=(32, 32))
    chain.push_frame(img)
    chain.set_params({"flash.amount": 0.4})
    flashed = shot(chain)
    programs = _programs(chain)
    assert flashed.mean() > img.mean() + 40
    assert chain.set_enabled("flash", False) is True
    off = shot(chain)
    assert np.abs(off - img).max() <= 1                       # the picture without the flash
    assert chain.get_params()["flash.amount"] == 0.4           # its value kept for later
    assert chain.set_enabled("flash", False) is False          # already off: nothing to do
    chain.set_enabled("flash", True)
    on = shot(chain)
    assert np.array_equal(on, flashed)
    assert _programs(chain) == programs                        # nothing was recompiled
    chain.release()


def test_an_effect_switched_off_in_the_preset_can_be_switched_on(ctx):
    chain = EffectChain.from_names(ctx, [{"name": "flash", "enabled": False,
                                          "params": {"invert": 1.0}}], size=(16, 16))
    chain.push_frame(solid((40, 40, 40), 16, 16))
    assert np.abs(shot(chain) - 40).max() <= 1
    chain.set_enabled("flash", True)
    assert np.abs(shot(chain) - (255 - 40)).max() <= 1
    chain.release()


def test_trails_survive_switching_another_effect(ctx):
    """Toggling flash (at zero strength, so the picture is the same either way) while a
    feedback trail decays: the trail goes on exactly as in a chain nobody touched."""
    dot = np.zeros((H, W, 3), np.uint8)
    dot[20:34, 40:56] = 255
    black = np.zeros_like(dot)
    chains = [EffectChain.from_names(ctx, ["feedback", "flash"], size=(W, H)) for _ in range(2)]
    toggled, untouched = chains
    for chain in chains:
        chain.set_params({"feedback.decay": 0.5})
        chain.push_frame(dot)
        chain.render()
        chain.push_frame(black)
    trail = []
    for step in range(4):
        toggled.set_enabled("flash", step % 2 == 1)
        a = shot(toggled)
        b = shot(untouched)
        assert np.array_equal(a, b), step
        trail.append(a[27, 48])
    for step, value in enumerate(trail, start=1):
        assert np.abs(value - encode(0.5 ** step)).max() <= 1, (step, value)
    for chain in chains:
        chain.release()


def test_a_trail_switched_back_on_starts_clean_and_output_stays_on(ctx):
    dot = np.zeros((H, W, 3), np.uint8)
    dot[20:34, 40:56] = 255
    chain = EffectChain.from_names(ctx, ["feedback"], size=(W, H))
    chain.set_params({"feedback.decay": 0.9})
    chain.push_frame(dot)
    chain.render()
    chain.set_enabled("feedback", False)
    chain.push_frame(np.zeros_like(dot))
    assert shot(chain).max() == 0       # off: just the black frame
    chain.set_enabled("feedback", True)
    assert shot(chain).max() == 0       # no stale ghost of the dot
    with pytest.raises(PhospheneError, match="cannot be switched off"):
        chain.set_enabled("output", False)
    with pytest.raises(PhospheneError, match="unknown effect 'blur'.*feedback"):
        chain.set_enabled("blur", False)
    chain.release()


USER_SHADER = """// effect: tint
// Multiplies the picture by a colour.
// param red 0 1 1  red gain
uniform float red;
void main() {
    vec4 c = texture(u_source, v_uv);
    f_color = vec4(c.r * red, c.g, c.b, 1.0);
}
"""

BROKEN_SHADER = """// effect: broken
// param red 0 1 1  red gain
uniform float red;
void main() {
    vec4 c = texture(u_source, v_uv);
    f_color = vec4(c.r * red, c.g, undefined_thing, 1.0);
}
"""


def test_user_shader_from_a_file(ctx, tmp_path):
    path = tmp_path / "my_tint_v2.glsl"  # addressed by the name its header declares: "tint"
    path.write_text(USER_SHADER)
    out = render(ctx, [str(path)], solid((200, 100, 50)), {"tint.red": 0.0})
    assert tuple(out[0, 0]) == (0, 100, 50)


def test_broken_shader_names_the_file_and_the_compiler_message(ctx, tmp_path):
    path = tmp_path / "broken.glsl"
    path.write_text(BROKEN_SHADER)
    with pytest.raises(PhospheneError) as err:
        EffectChain.from_names(ctx, [str(path)], size=(16, 16))
    message = str(err.value)
    assert str(path) in message
    assert "undefined_thing" in message          # Mesa's own words about the bad identifier
    assert f"{path}:6:" in message              # ... on line 6 of the user's file


def test_reload_keeps_the_last_good_chain(ctx, tmp_path, caplog):
    path = tmp_path / "tint.glsl"
    path.write_text(USER_SHADER)
    chain = EffectChain.from_names(ctx, [str(path)], size=(16, 16))
    chain.push_frame(solid((200, 100, 50), 16, 16))
    chain.set_params({"tint.red": 0.0})
    chain.render()
    assert tuple(chain.read()[0, 0]) == (0, 100, 50)

    path.write_text(BROKEN_SHADER)
    with pytest.raises(PhospheneError, match="undefined_thing"):
        chain.reload()
    chain.render()
    assert tuple(chain.read()[0, 0]) == (0, 100, 50)  # still the old shader, old value

    import os
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert chain.reload_if_changed() is False and "keeping the running chain" in caplog.text

    path.write_text(USER_SHADER.replace("c.g, c.b", "c.b, c.g"))  # swap green and blue
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert chain.reload_if_changed() is True
    chain.render()
    assert tuple(chain.read()[0, 0]) == (0, 50, 100)  # new shader, parameter value carried over
    chain.release()


def test_headless_renderer_async_readback_keeps_frame_order():
    colours = [(10 * i, 255 - 10 * i, 7 * i) for i in range(6)]
    got = []
    with HeadlessRenderer(32, 18, ["color"]) as r:
        for c in colours:
            r.push_frame(solid(c, 8, 8))
            done = r.render()
            if done is not None:
                got.append(tuple(done[9, 16]))
        got.extend(tuple(f[9, 16]) for f in r.drain())
        assert r.render_sync().shape == (18, 32, 3)
    assert got == colours
