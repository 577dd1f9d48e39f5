"""The performer's overlay: its text as a pure function of what the engine knows
(``overlay_lines``), the feed that gathers it, and the box drawn in a real window under Xvfb
(read back from the X server; ``docs/images/overlay.png`` is made the same way)."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest

from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.runtime.display import KEY_ADDRESSES
from phosphene.live.runtime.overlay_info import (OverlayFeed, OverlayInfo, keyframe_label,
                                                 meter_level, overlay_lines)
from phosphene.live.show.presets import parse_preset
from phosphene.render.chain import EffectChain
from phosphene.render.overlay import LAMP, METER, PAD, WARNING, box_height
from phosphene.render.window import Window
from xvfb_display import xvfb_display, xwd_screenshot

BUSY = OverlayInfo(input_dbfs=-18.04, silent_s=0.0, tempo_bpm=123.4, tempo_source="analyzer",
                   onsets=42, preset="stage", keyframe=1, keyframes=3, keyframe_label="seed 2",
                   clips=("kicks",), osc=17, midi=3, midi_learn="psi", display_fps=60.0,
                   generator_fps=11.5)


def plain(lines):
    return [line.replace(LAMP, "") for line in lines]


def warnings(lines):
    return [line[len(WARNING):] for line in lines if line.startswith(WARNING)]


def test_the_overlay_says_what_a_performer_needs():
    lines = overlay_lines(BUSY)
    assert lines[0].startswith(METER) and "-18.0 dBFS" in lines[0] and lines[0].endswith("\tbeat")
    text = "\n".join(plain(lines))
    assert "123.4 BPM (analyzer)" in text and "onsets 42" in text
    assert "preset stage" in text and "keyframe 2/3 (seed 2)" in text
    assert "OSC 17" in text and "MIDI 3" in text and "generator 11.5 fps" in text
    assert "clips: kicks" in text
    assert "MIDI learn: move a control for psi" in text
    # the lamps: OSC and MIDI on one line (the meter's beat lamp is drawn by the overlay)
    assert sum(line.count(LAMP) for line in lines) == 2
    assert warnings(lines) == []                        # nothing wrong: no warnings


def test_warnings_for_blackout_freeze_silence_a_slow_generator_and_faults():
    info = OverlayInfo(input_dbfs=-math.inf, silent_s=12.4, blackout=1.0, blackout_on=True,
                       frozen=True, display_fps=60.0, generator_fps=3.04, generator_behind=True,
                       errors=2, restarts=1, keyframes=5)
    lines = overlay_lines(info)
    assert "silence" in lines[0]
    assert warnings(lines) == ["BLACKOUT", "FROZEN (the picture is held)", "input silent 12 s",
                               "generator behind (3.0 fps; display 60 fps)",
                               "2 errors, 1 thread restart (see the report)"]
    text = "\n".join(plain(lines))
    assert "tempo -" in text and "OSC off" in text and "MIDI off" in text
    # fading either way is said as such; a short silence is not a warning yet
    assert warnings(overlay_lines(OverlayInfo(blackout=0.4, blackout_on=True))) == \
        ["fading to black"]
    assert warnings(overlay_lines(OverlayInfo(blackout=0.4))) == ["fading in from black"]
    assert warnings(overlay_lines(OverlayInfo(silent_s=9.0))) == []


def test_meter_and_keyframe_labels():
    assert meter_level(-math.inf) == 0.0 and meter_level(0.0) == 1.0
    assert meter_level(-30.0) == pytest.approx(0.5) and meter_level(-90.0) == 0.0
    preset = parse_preset({"name": "k", "keyframes": [{"seed": 4}, {"slerp": [1, 2], "t": 0.25},
                                                      {"w": "looks/dawn.npy"}]})
    assert [keyframe_label(preset, i) for i in range(4)] == \
        ["seed 4", "slerp 1-2 @ 0.25", "w: dawn.npy", "captured"]


class FakeWindow:
    overlay_visible = True

    def __init__(self):
        self.lines, self.levels = [], []

    def set_overlay_lines(self, lines):
        self.lines = lines

    def set_overlay_levels(self, level, lamps=()):
        self.levels.append((level, lamps))


def test_the_feed_gathers_from_an_engine_and_tolerates_missing_parts():
    sr = 48000
    frame = FeatureFrame(sr * 20, sr, -24.0, 0.5, 0.1, False, 0.2, 0.2, 0.2, 900.0, 0.1, 120.0,
                         0.0, True, gated=False)
    preset = parse_preset({"name": "stage", "keyframes": [{"seed": 1}, {"seed": 2}]})
    state = SimpleNamespace(values={"tempo_bpm": 0.0}, request=SimpleNamespace(keyframe=1),
                            preset_name="stage", blackout=0.0, frozen=True)
    show = SimpleNamespace(controls=SimpleNamespace(tempo_bpm=120.0), preset=preset,
                           director=SimpleNamespace(keyframes=[0, 1]), blacked_out=False)
    stats = SimpleNamespace(snapshot=lambda: {"accepted": {"/phosphene/param/psi": 5}})
    engine = SimpleNamespace(
        state=state, show=show, session=SimpleNamespace(last_frame=frame),
        counters=SimpleNamespace(onsets=7), clips=None, midi=None,
        osc=SimpleNamespace(stats=stats),
        _status=lambda: {"fps": 30.0, "generator_fps": 2.0})   # no restarts, no "behind"
    feed, window = OverlayFeed(engine), FakeWindow()
    feed.frame(window, now=100.0)
    text = "\n".join(plain(window.lines))
    assert "120.0 BPM (analyzer)" in text and "keyframe 2/2 (seed 2)" in text
    assert "OSC 5" in text and "MIDI off" in text
    # judged behind by the overlay itself (the engine's status had no verdict)
    assert warnings(window.lines) == ["FROZEN (the picture is held)",
                                      "generator behind (2.0 fps; display 30 fps)"]
    level, lamps = window.levels[-1]
    assert level == pytest.approx(meter_level(-24.0))
    assert lamps == (1.0, 1.0)            # on the beat; OSC messages arrived
    # the engine's own verdict wins; silence is counted on the sample clock
    engine._status = lambda: {"fps": 30.0, "generator_fps": 2.0, "generator_behind": False,
                              "errors": 1, "thread_restarts": 0}
    engine.session.last_frame = FeatureFrame.silent(sr * 32, sr)
    feed.frame(window, now=100.1)                 # within the refresh period: text unchanged
    feed.frame(window, now=101.0)
    assert warnings(window.lines) == ["FROZEN (the picture is held)", "input silent 12 s",
                                      "1 error (see the report)"]
    assert window.levels[-1] == (0.0, (0.0, 0.0))   # silence, no beat, no new OSC
    assert "120.0 BPM (default)" in "\n".join(window.lines)   # nothing heard: the fallback
    # without a verdict in the status, the display budget's is taken
    engine._status = lambda: {"fps": 30.0, "generator_fps": 25.0}
    engine.governor = SimpleNamespace(behind=True)
    feed.frame(window, now=102.0)
    assert "generator behind (25.0 fps; display 30 fps)" in warnings(window.lines)


def test_the_performer_keys_are_free_and_reach_valid_addresses():
    glfw = pytest.importorskip("glfw")
    window_keys = {"KEY_F", "KEY_ESCAPE", "KEY_Q", "KEY_O"}      # the window's own
    assert not window_keys & set(KEY_ADDRESSES)
    for key, address in KEY_ADDRESSES.items():
        assert isinstance(getattr(glfw, key), int), key
        routes.validate(address, [], routes.NamespaceContext())   # a key sends no argument
    assert {KEY_ADDRESSES[k] for k in ("KEY_B", "KEY_P", "KEY_Z")} == \
        {"/phosphene/blackout", "/phosphene/panic", "/phosphene/freeze"}


# -- in a real window -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def xvfb():
    with xvfb_display((800, 600)) as display:
        yield display


def show_picture(size):
    """A soft colour field, like the built-in model's pictures."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([0.5 + 0.5 * np.sin(6 * x + 1), 0.5 + 0.5 * np.sin(5 * y + 2 * x),
                    0.5 + 0.5 * np.cos(4 * x * y + 3 * y)], axis=-1)
    return (255 * img).astype(np.uint8)


def test_the_overlay_is_drawn_readably_in_a_window(xvfb, tmp_path):
    size = (800, 600)
    info = OverlayInfo(input_dbfs=-14.2, tempo_bpm=121.8, tempo_source="analyzer", onsets=311,
                       preset="default", keyframe=2, keyframes=5,
                       keyframe_label="slerp 23-42 @ 0.50", osc=48, midi=12,
                       midi_learn="color.hue", display_fps=60.0, generator_fps=8.2,
                       blackout=0.6, blackout_on=True, silent_s=0.0)
    lines = overlay_lines(info)
    with Window(size, title="phosphene-overlay", vsync=False, overlay=True) as window:
        chain = EffectChain.from_names(window.ctx, ["vignette"], size=size)
        chain.push_frame(show_picture(size))
        chain.render()
        window.set_overlay_lines(lines)
        for _ in range(3):
            window.poll()
            window.set_overlay_levels(0.78, (1.0, 1.0, 0.0))
            shot = window.present(chain.canvas, capture=True).astype(int)
            time.sleep(0.02)
        x, y = window.glfw.get_window_pos(window.window)
        screen = xwd_screenshot(tmp_path)
        chain.release()
    on_screen = screen[y:y + size[1], x:x + size[0]]
    assert np.abs(on_screen - shot).max() <= 2
    assert window.overlay.lines[1:] == lines
    height = box_height(len(lines) + 1)
    box = shot[8:8 + height, 8:8 + 460]
    below = shot[8 + height + 4:, :]
    # the box is a dark backing with bright text on it; the picture outside is untouched
    assert np.median(box) < 100 and (box.max(axis=-1) > 200).mean() > 0.03
    assert below.mean() > 60
    # the meter (lit green up to 78 %) and the beat lamp (lit) on the meter's row
    row = 8 + PAD + 20 + 10                       # the meter is the second line
    meter = shot[row, 8 + 170:8 + 390]
    lit = meter[:, 1] > 150
    assert 0.7 < lit.mean() < 0.85
    assert shot[row, 8 + 390 + 8 + 6][:2].min() > 200  # the lamp, lit (yellow)
    # the warning line is amber: more red than blue
    warn_rows = shot[8 + PAD + 20 * (len(lines)): 8 + PAD + 20 * (len(lines) + 1), 8:200]
    bright = warn_rows[warn_rows.max(axis=-1) > 150]
    assert len(bright) and (bright[:, 0] - bright[:, 2]).mean() > 100
