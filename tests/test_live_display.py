"""The live display's Presenter on a headless EGL context: effects switched on and off from the
show state run in the same chain (no rebuild), and the picture follows the switch."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import yaml

from live_engine_helpers import tiny_generator
from phosphene.live.display import Presenter
from phosphene.live.generator_worker import GeneratedFrame
from phosphene.live.presets import parse_preset
from phosphene.live.show import GeneratorFacts, Show
from phosphene.render.context import create_headless_context

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


def frame_of(state, rgb) -> GeneratedFrame:
    img = np.zeros((*SIZE, 3), np.uint8)
    img[:] = rgb
    return GeneratedFrame(1, img, state.request, 0.0, 0.0)


def shot(presenter, state, generated, now):
    """Draw one display frame and read the canvas back as ints."""
    presenter.draw(state, generated, now)
    return presenter.chain.read().astype(int)


def test_switching_effects_keeps_the_chain_and_changes_the_picture(ctx, base_state):
    presenter = Presenter(ctx, SIZE, {}, SR)
    try:
        flash = {"flash.amount": 0.5}
        grey = frame_of(base_state, (60, 60, 60))
        lit = shot(presenter, with_switches(base_state, flash), grey, 1.0)
        chain = presenter.chain
        assert chain.enabled == {"crossfade": True, "feedback": True, "flash": True,
                                 "vignette": False, "output": True}
        dark = shot(presenter, with_switches(base_state, flash, flash=False), grey, 2.0)
        assert np.abs(dark - 60).max() <= 1                  # flash off: the frame itself
        assert lit.mean() > dark.mean() + 50
        again = shot(presenter, with_switches(base_state, flash, flash=True), grey, 3.0)
        assert np.array_equal(again, lit)
        # the preset's switched-off vignette goes on without a rebuild too: corners darken
        vignette = with_switches(base_state, {"vignette.amount": 1.0}, vignette=True)
        shaded = shot(presenter, vignette, grey, 4.0)
        assert shaded[0, 0].mean() < shaded[16, 16].mean() - 5
        assert presenter.chain is chain and presenter.rebuilds == 0

        # a different effect list (a preset switch) is the one thing that rebuilds
        other = dataclasses.replace(base_state, effect_names=("flash",),
                                    effect_refs=("flash",),
                                    effects_enabled=types.MappingProxyType({"flash": True}))
        presenter.draw(other, grey, 5.0)
        assert presenter.rebuilds == 1 and presenter.chain.effect_names == \
            ["crossfade", "flash", "output"]
    finally:
        presenter.release()
