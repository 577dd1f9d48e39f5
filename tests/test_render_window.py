"""A real window under Xvfb: open, render, screenshot (glReadPixels and `xwd -root`), keys pressed
with xdotool (fullscreen, overlay, quit), close cleanly. Also monitor listing."""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np
import pytest

from phosphene.render.chain import EffectChain
from phosphene.render.headless import HeadlessRenderer
from phosphene.render.monitors import list_monitors, print_monitors
from phosphene.render.window import Window, fit_viewport
from xvfb_display import SCREEN, xdotool_key, xvfb_display, xwd_screenshot


@pytest.fixture(scope="module")
def xvfb():
    with xvfb_display(SCREEN) as display:
        yield display


def pump(window, chain, frames=6):
    for _ in range(frames):
        window.poll()
        window.present(chain.canvas)
        time.sleep(0.02)


def quadrant_frame(n=64):
    img = np.zeros((n, n, 3), np.uint8)
    h = n // 2
    img[:h, :h], img[:h, h:] = (255, 0, 0), (0, 255, 0)
    img[h:, :h], img[h:, h:] = (0, 0, 255), (255, 255, 255)
    return img


def test_fit_viewport():
    assert fit_viewport((160, 90), (160, 90), "letterbox") == (0, 0, 160, 90)
    assert fit_viewport((160, 90), (200, 200), "letterbox") == (0, 44, 200, 112)
    assert fit_viewport((160, 90), (200, 200), "crop") == (-78, 0, 356, 200)
    assert fit_viewport((160, 90), (200, 200), "stretch") == (0, 0, 200, 200)


def test_window_shows_the_same_pixels_as_headless_then_keys_work(xvfb, tmp_path):
    size = (320, 180)
    effects = ["color", "vignette", "chroma"]
    params = {"color.hue": 40.0, "vignette.amount": 0.6, "chroma.amount": 0.01}
    frame = quadrant_frame()

    with HeadlessRenderer(*size, effects) as r:
        r.push_frame(frame)
        r.set_params(params)
        headless = r.render_sync().astype(int)

    window = Window(size, title="phosphene-test", vsync=False)
    chain = EffectChain.from_names(window.ctx, effects, size=size)
    chain.push_frame(frame)
    chain.set_params(params)
    chain.render()
    shot = window.present(chain.canvas, capture=True).astype(int)
    assert window.framebuffer_size == size
    assert np.array_equal(shot, headless)  # same chain, same pixels

    # What the X server shows: the picture at the window's place on the screen.
    pump(window, chain)
    x, y = window.glfw.get_window_pos(window.window)
    screen = xwd_screenshot(tmp_path)
    on_screen = screen[y:y + size[1], x:x + size[0]]
    assert np.abs(on_screen - headless).max() <= 2

    # f: fullscreen on the (only) monitor, letterboxed: bars above and below the 16:9 canvas
    xdotool_key("f")
    for _ in range(50):
        pump(window, chain, 1)
        if window.framebuffer_size == SCREEN:
            break
    assert window.fullscreen and window.framebuffer_size == SCREEN
    full = window.present(chain.canvas, capture=True).astype(int)
    bar = (SCREEN[1] - SCREEN[0] * 9 // 16) // 2  # 75 rows
    assert full[:bar - 1].max() == 0 and full[-bar + 1:].max() == 0
    assert np.abs(full[bar + 2, SCREEN[0] // 2 + 20] - headless[1, 180]).max() <= 40
    screen = xwd_screenshot(tmp_path)
    assert screen[:bar - 1].max() == 0 and screen[bar + 20:SCREEN[1] - bar - 20].max() > 100

    xdotool_key("f")
    for _ in range(50):
        pump(window, chain, 1)
        if window.framebuffer_size == size:
            break
    assert not window.fullscreen and window.framebuffer_size == size

    # resizing: the picture stays 1:1 in height and gets bars left and right
    window.glfw.set_window_size(window.window, 360, 180)
    for _ in range(50):
        pump(window, chain, 1)
        if window.framebuffer_size == (360, 180):
            break
    wide = window.present(chain.canvas, capture=True).astype(int)
    assert wide[:, :19].max() == 0 and wide[:, -19:].max() == 0
    assert np.array_equal(wide[:, 20:340], headless)
    window.glfw.set_window_size(window.window, *size)
    for _ in range(50):
        pump(window, chain, 1)
        if window.framebuffer_size == size:
            break

    # o: the fps overlay appears in the top-left corner and only changes that corner
    before = window.present(chain.canvas, capture=True).astype(int)
    xdotool_key("o")
    pump(window, chain, 40)  # long enough for the clock to publish a figure
    assert window.overlay_visible and "fps" in window.overlay.text
    after = window.present(chain.canvas, capture=True).astype(int)
    assert np.abs(after[8:30, 8:100] - before[8:30, 8:100]).max() > 50
    assert np.array_equal(after[60:], before[60:])

    # q quits: the loop sees it, closing releases everything
    xdotool_key("q")
    alive = True
    for _ in range(50):
        alive = window.poll()
        if not alive:
            break
        time.sleep(0.02)
    assert not alive
    chain.release()
    window.close()
    window.close()  # idempotent


def test_crop_fills_a_square_window(xvfb):
    with Window((120, 120), title="phosphene-crop", fit="crop", vsync=False) as window:
        chain = EffectChain.from_names(window.ctx, [], size=(160, 90))
        frame = np.zeros((90, 160, 3), np.uint8)
        frame[:, :30] = (255, 0, 0)     # red left strip: cut off by the crop (35 px each side)
        frame[:, 30:] = (0, 200, 0)
        chain.push_frame(frame)
        chain.render()
        shot = window.present(chain.canvas, capture=True)
        assert (shot[..., 1] > 150).all() and shot[..., 0].max() < 30
        chain.release()


def test_monitors_are_listed_with_their_modes(xvfb, capsys):
    monitors = list_monitors()
    assert len(monitors) == 1
    m = monitors[0]
    assert (m.current.width, m.current.height) == SCREEN and m.index == 0
    print_monitors()
    out = capsys.readouterr().out
    assert "Monitors" in out and f"0: {m.name}  {SCREEN[0]}x{SCREEN[1]}" in out
    # ... and `phosphene devices` shows the same section
    devices = subprocess.run([os.sys.executable, "-m", "phosphene", "devices"],
                             capture_output=True, text=True, timeout=60)
    assert devices.returncode == 0, devices.stderr
    assert "Monitors:" in devices.stdout
    assert f"0: {m.name}  {SCREEN[0]}x{SCREEN[1]}" in devices.stdout


def test_no_display_gives_an_empty_list_with_a_note():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    code = ("from phosphene.render.monitors import list_monitors, print_monitors\n"
            "m = list_monitors(); assert m == [] and 'DISPLAY' in m.note, m.note\n"
            "print_monitors()\n")
    out = subprocess.run([os.sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "none: no display" in out.stdout


def test_unknown_monitor_is_a_clear_error(xvfb):
    from phosphene.errors import PhospheneError

    with pytest.raises(PhospheneError, match="no monitor 3; monitors: 0: "):
        Window((64, 64), monitor=3)
    # glfw was released: a new window still opens
    with Window((64, 64), monitor=0, vsync=False) as window:
        assert window.framebuffer_size == (64, 64)
