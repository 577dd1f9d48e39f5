"""The one effect-chain driver (live display, offline render, replay) on a headless EGL context:
effects switched on and off from the show state run in the same chain (no rebuild), the picture
follows the switch, and a shader saved during the show is reloaded (a broken save keeps the
last good chain)."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import yaml

from live_engine_helpers import tiny_generator
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.show import GeneratorFacts, Show
from phosphene.render.context import create_headless_context
from phosphene.render.driver import ChainDriver

SR = 48000
SIZE = (32, 32)

PRESET = """\
name: switches
output: {width: 32, height: 32, fps: 20}
keyframes: [{seed: 1}, {seed: 2}]
effects:
  - {name: feedback}
  - {name: flash}
  - {name: vignette, enabled: false}
"""


@pytest.fixture(scope="module")
def ctx():
    c = create_headless_context()
    yield c
    c.release()


@pytest.fixture(scope="module")
def base_state():
    preset = parse_preset(yaml.safe_load(PRESET))
    return Show(preset, GeneratorFacts.from_generator(tiny_generator()), SR).state()


def with_switches(state, params=None, **enabled):
    return dataclasses.replace(
        state, effects_enabled=types.MappingProxyType({**state.effects_enabled, **enabled}),
        effect_params=types.MappingProxyType({**state.effect_params, **(params or {})}))


def frame_of(rgb) -> np.ndarray:
    img = np.zeros((*SIZE, 3), np.uint8)
    img[:] = rgb
    return img


def shot(driver, state, image, now, frame_id=1):
    """Draw one display frame and read the canvas back as ints."""
    driver.draw(state, image, frame_id=frame_id, frame_sample=state.sample_index, now=now)
    return driver.read().astype(int)


def test_switching_effects_keeps_the_chain_and_changes_the_picture(ctx, base_state):
    driver = ChainDriver(ctx, SIZE, SR)
    try:
        flash = {"flash.amount": 0.5}
        grey = frame_of((60, 60, 60))
        lit = shot(driver, with_switches(base_state, flash), grey, 1.0)
        chain = driver.chain
        assert chain.enabled == {"crossfade": True, "feedback": True, "flash": True,
                                 "vignette": False, "output": True}
        dark = shot(driver, with_switches(base_state, flash, flash=False), grey, 2.0)
        assert np.abs(dark - 60).max() <= 1                  # flash off: the frame itself
        assert lit.mean() > dark.mean() + 50
        again = shot(driver, with_switches(base_state, flash, flash=True), grey, 3.0)
        assert np.array_equal(again, lit)
        # the preset's switched-off vignette goes on without a rebuild too: corners darken
        vignette = with_switches(base_state, {"vignette.amount": 1.0}, vignette=True)
        shaded = shot(driver, vignette, grey, 4.0)
        assert shaded[0, 0].mean() < shaded[16, 16].mean() - 5
        assert driver.chain is chain and driver.rebuilds == 0

        # a different effect list (a preset switch) is the one thing that rebuilds
        other = dataclasses.replace(base_state, effect_names=("flash",),
                                    effect_refs=("flash",),
                                    effects_enabled=types.MappingProxyType({"flash": True}))
        driver.draw(other, grey, frame_id=1, now=5.0)
        assert driver.rebuilds == 1 and driver.chain.effect_names == \
            ["crossfade", "flash", "output"]
    finally:
        driver.release()


TINT = """\
// effect: tint
// Adds a constant colour.
// param amount 0 1 1  how much
uniform float amount;
void main() {
    vec3 c = texture(u_source, v_uv).rgb;
    f_color = vec4(c + amount * vec3(%s), 1.0);
}
"""


def save_shader(path, body: str, stamp_ns: int) -> None:
    path.write_text(body)
    # a distinct modification time, as a real save seconds later would have
    import os
    os.utime(path, ns=(stamp_ns, stamp_ns))


def test_a_shader_saved_during_the_show_is_reloaded_and_a_broken_save_keeps_the_last_good(
        ctx, base_state, tmp_path, monkeypatch):
    import phosphene.render.driver as driver_module

    monkeypatch.setattr(driver_module, "SHADER_POLL_S", 0.0)
    shader = tmp_path / "tint.glsl"
    save_shader(shader, TINT % "0.0, 0.0, 0.0", 1_000_000_000)
    state = dataclasses.replace(base_state, effect_names=("tint",), effect_refs=(str(shader),),
                                effects_enabled=types.MappingProxyType({"tint": True}),
                                effect_params=types.MappingProxyType({"tint.amount": 1.0}))
    grey = frame_of((60, 60, 60))
    driver = ChainDriver(ctx, SIZE, SR)
    try:
        before = shot(driver, state, grey, 1.0)
        assert np.abs(before - 60).max() <= 1
        assert not driver.reload_if_changed()               # nothing saved yet

        save_shader(shader, TINT % "0.0, 0.5, 0.0", 2_000_000_000)
        assert driver.reload_if_changed()
        greener = shot(driver, state, grey, 2.0)
        assert greener[..., 1].mean() > before[..., 1].mean() + 50
        assert np.abs(greener[..., 0] - before[..., 0]).max() <= 1

        save_shader(shader, TINT.replace("uniform float amount;", "uniform float amount") % "1",
                    3_000_000_000)
        assert not driver.reload_if_changed()               # logged, the last good one runs
        assert np.array_equal(shot(driver, state, grey, 3.0), greener)
        assert driver.rebuilds == 0
    finally:
        driver.release()
