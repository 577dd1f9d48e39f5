"""`phosphene live` in a real window under Xvfb, played as a performer plays it: the real
command (a subprocess, no --headless), keys pressed with xdotool, the screen read back with
`xwd -root` + ImageMagick, the run report read at the end."""

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
from phosphene.render.overlay import MAX_BOX_H
from xvfb_display import SCREEN, xdotool, xdotool_key, xvfb_display, xwd_screenshot

SIZE = (64, 48)          # 4:3 canvas; the 32x32 generator frame is letterboxed into it
BAR = (SIZE[0] - SIZE[1]) // 2
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def xvfb():
    with xvfb_display(SCREEN) as display:
        yield display


def wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"phosphene live exited (rc {proc.returncode}) while waiting "
                                 f"for {what}:\n{proc.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def find_window() -> int | None:
    found = subprocess.run(["xdotool", "search", "--name", "^phosphene"], capture_output=True,
                           text=True, timeout=10)
    ids = found.stdout.split()
    return int(ids[0]) if found.returncode == 0 and ids else None


def window_region(tmp_path, window: int) -> np.ndarray:
    """What the window shows on the X screen, (H, W, 3) int."""
    geometry = dict(line.split("=", 1) for line in
                    xdotool("getwindowgeometry", "--shell", str(window)).split())
    x, y, w, h = (int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    return xwd_screenshot(tmp_path)[y:y + h, x:x + w]


def test_live_in_a_window_shows_the_show_takes_keys_and_quits_cleanly(xvfb, tmp_path):
    model = save_generator(tiny_generator(), tmp_path / "tiny.safetensors")
    preset = write_presets(tmp_path / "presets")
    # clicks every half second for longer than the test plays: only `q` can end this run
    wav = write_clicks(tmp_path / "clicks.wav", [0.25 + 0.5 * i for i in range(60)],
                       duration_s=30.0)
    report_path = tmp_path / "run.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "phosphene", "live", "--preset", str(preset), "--model",
         str(model), "--audio-file", str(wav), "--output", "none", "--no-osc",
         "--size", f"{SIZE[0]}x{SIZE[1]}", "--duration", "25", "--report", str(report_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DISPLAY": xvfb})
    try:
        window = wait_for(find_window, "the show's window", proc)

        # the picture: the generator's square frame letterboxed into the canvas (bars left
        # and right: one flat colour, black but for the flash), not black, and moving with
        # the music (the clicks flash it, the level blends keyframes)
        def lit():
            region = window_region(tmp_path, window)
            return region if region.shape[:2] == SIZE[::-1] and \
                region[:, BAR + 4:-BAR - 4].mean() > 10 else None

        shots = [wait_for(lit, "a picture in the window", proc)]
        for _ in range(6):
            time.sleep(0.25)
            shots.append(window_region(tmp_path, window))
        for shot in shots:
            bars = np.concatenate([shot[:, :BAR - 1], shot[:, -BAR + 1:]], axis=1)
            picture = shot[:, BAR + 1:-BAR - 1]
            assert np.ptp(bars) <= 2 and bars.max() < picture.max()
            assert picture.mean() > 10 and picture.std() > 5
        change = max(np.abs(a - b).mean() for a in shots for b in shots)
        assert change > 3.0, "the picture does not move"

        xdotool_key("o")                   # fps overlay
        xdotool_key("space")               # next keyframe
        xdotool_key("f")                   # fullscreen: the 4:3 canvas fills the 4:3 screen

        def full_screen():
            screen = xwd_screenshot(tmp_path)
            # the window was 64x48 in the top-left corner: the middle of the screen was black
            middle = screen[150:450, 250:550]
            return screen if middle.mean() > 10 and middle.std() > 5 else None

        screen = wait_for(full_screen, "the picture filling the screen", proc)
        assert screen.shape[:2] == SCREEN[::-1]
        # the letterbox bars scale with the picture: 800 / 64 = 12.5 screen pixels per pixel
        scale = SCREEN[0] / SIZE[0]
        bars = screen[:, :int(BAR * scale) - 8]
        picture = screen[:, int(BAR * scale) + 8:-int(BAR * scale) - 8]
        assert np.ptp(bars[MAX_BOX_H + 16:]) <= 2  # (below the overlay's box)
        assert picture.mean() > 10 and picture.std() > 5

        xdotool_key("q")                   # quit: the run ends, the report is written
        rc = proc.wait(timeout=TIMEOUT_S)
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
    assert rc == 0, stderr
    assert "frames shown" in stderr
    report = json.loads(report_path.read_text())
    display = report["display"]
    assert display["mode"] == "window" and display["canvas"] == list(SIZE)
    assert display["fullscreen"] is True and display["overlay"] is True
    assert display["window"] == list(SCREEN)
    assert report["keys"]["events"] == 1                    # space reached the show ...
    assert report["final"]["keyframe"] == 1                 # ... and moved it on a keyframe
    assert report["audio"]["seconds_analysed"] < 25.0       # q ended the run, not the clock
    assert report["frames"]["presented"] > 20 and report["frames"]["generated"] > 0
    assert report["onsets"]["detected"] >= 3
    assert report["errors"] == []
