"""The window on a screen smaller than the canvas, and ``--fit`` (issue 11, defect 10).

A 1024x1024 canvas used to open a 1024x1024 window on a 1280x720 screen (304 rows off-screen),
and a square canvas could not fill a 16:9 projector. Under Xvfb with a 1280x720 screen: the
window opens inside the screen with the canvas's aspect ratio (xwininfo reads its place), and
``phosphene live --fit crop --fullscreen`` fills the screen with no bars (``import -window
root`` reads the screen).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from live_engine_helpers import tiny_generator, write_clicks, write_presets
from phosphene.models.loading import save_generator
from phosphene.render.window import Window, fit_window_size
from xvfb_display import xdotool_key, xvfb_display

SCREEN = (1280, 720)
TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def xvfb():
    with xvfb_display(SCREEN) as display:
        yield display


def xwininfo_geometry(window_id: int | str) -> tuple[int, int, int, int]:
    """(x, y, width, height) of an X window on the screen, as xwininfo reports it."""
    out = subprocess.run(["xwininfo", "-id", str(window_id)], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    fields = dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)
    return tuple(int(fields[k]) for k in ("Absolute upper-left X", "Absolute upper-left Y",
                                          "Width", "Height"))


def root_screenshot(tmp_path) -> np.ndarray:
    """The whole screen through ImageMagick's ``import -window root``: (H, W, 3) int."""
    from PIL import Image

    png = tmp_path / "root.png"
    subprocess.run(["import", "-window", "root", str(png)], check=True, timeout=30,
                   capture_output=True)
    with Image.open(png) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def test_fit_window_size_keeps_the_aspect_and_never_grows():
    assert fit_window_size((1024, 1024), (1280, 720)) == (720, 720)
    assert fit_window_size((1920, 1080), (1280, 720)) == (1280, 720)
    assert fit_window_size((2048, 512), (1280, 720)) == (1280, 320)
    assert fit_window_size((640, 480), (1280, 720)) == (640, 480)       # fits: canvas size


def test_a_canvas_larger_than_the_screen_opens_a_window_inside_it(xvfb):
    with Window((1024, 1024), title="phosphene-fit-test", vsync=False) as window:
        for _ in range(5):
            window.poll()
            time.sleep(0.05)
        assert window.framebuffer_size == (720, 720)
        found = subprocess.run(["xdotool", "search", "--name", "^phosphene-fit-test$"],
                               capture_output=True, text=True, timeout=10).stdout.split()
        x, y, w, h = xwininfo_geometry(found[0])
        assert (w, h) == (720, 720)
        assert 0 <= x and x + w <= SCREEN[0] and 0 <= y and y + h <= SCREEN[1]


def _find_show_window(proc) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--name", "^phosphene"],
                               capture_output=True, text=True, timeout=10).stdout.split()
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"phosphene live exited: {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("no window")


def _live_fullscreen(tmp_path, xvfb, fit: str):
    """``phosphene live`` of a 1024x1024 canvas, fullscreen with ``--fit``, until the picture
    is on the whole screen; returns (screenshot, report)."""
    model = save_generator(tiny_generator(), tmp_path / "tiny.safetensors")
    preset = write_presets(tmp_path / "presets")
    wav = write_clicks(tmp_path / "clicks.wav", [0.25 + 0.5 * i for i in range(60)], 30.0)
    report = tmp_path / f"run-{fit}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "phosphene", "live", "--preset", str(preset), "--model",
         str(model), "--audio-file", str(wav), "--output", "none", "--no-osc", "--size",
         "1024x1024", "--fullscreen", "--fit", fit, "--duration", "28", "--report",
         str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DISPLAY": xvfb})
    try:
        window = _find_show_window(proc)
        deadline = time.monotonic() + TIMEOUT_S
        while True:               # until the picture is drawn in the middle of the screen
            screen = root_screenshot(tmp_path)
            middle = screen[300:420, 580:700]
            # ... by a window already fullscreen (the display process may draw a frame or two
            # at the first size), and the frame after that is the one looked at
            if (middle.mean() > 10 and middle.std() > 3
                    and xwininfo_geometry(window) == (0, 0, *SCREEN)):
                time.sleep(0.5)
                screen = root_screenshot(tmp_path)
                break
            assert time.monotonic() < deadline, "no picture on the screen"
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.3)
        assert xwininfo_geometry(window) == (0, 0, *SCREEN)
        xdotool_key("q")
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return screen, json.loads(report.read_text())


def test_fit_crop_fills_a_16_9_screen_with_a_square_canvas(xvfb, tmp_path):
    screen, report = _live_fullscreen(tmp_path, xvfb, "crop")
    assert screen.shape[:2] == SCREEN[::-1]
    assert report["display"]["fit"] == "crop" and report["display"]["window"] == list(SCREEN)
    # no bars: every edge row and column of the screen is picture (letterbox leaves 280
    # black columns each side; a bar is cleared to exact black)
    for edge in (screen[0], screen[-1], screen[:, 0], screen[:, -1]):
        assert edge.max() > 0 and edge.mean() > 5, edge.mean()
    assert (screen[:, :280].max(axis=2) > 0).mean() > 0.9


def test_letterbox_is_the_default_and_keeps_the_whole_square(xvfb, tmp_path):
    screen, report = _live_fullscreen(tmp_path, xvfb, "letterbox")
    assert report["display"]["fit"] == "letterbox"
    assert screen[:, :270].max() == 0 and screen[:, -270:].max() == 0     # the bars
    assert screen[:, 300:980].mean() > 10                                 # the picture
