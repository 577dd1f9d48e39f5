"""A real X display for window tests: Xvfb on a free display number, and the X tools a test
uses on it (xdotool keys, an `xwd -root` screenshot through ImageMagick)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SCREEN = (800, 600)


def _die_with_parent():
    """Xvfb gets SIGTERM if the test process dies abruptly (an Xlib error exits the process)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def xvfb_display(screen: tuple[int, int] = SCREEN) -> Iterator[str]:
    """Start Xvfb (it picks the display number and tells us through -displayfd), point
    ``DISPLAY`` at it, and stop it afterwards. Yields the display name (":N")."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        # -noreset: by default an X server resets when its last client disconnects, and a
        # client connecting during the reset finds no display (or no monitors)
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{screen[0]}x{screen[1]}x24",
         "-nolisten", "tcp", "-noreset"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    os.close(write_fd)
    old = os.environ.get("DISPLAY")
    try:
        with os.fdopen(read_fd) as r:
            number = r.readline().strip()  # blocks until the server is ready
        assert number, "Xvfb did not start"
        display = f":{number}"
        os.environ["DISPLAY"] = display
        yield display
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def xdotool(*args: str) -> str:
    out = subprocess.run(["xdotool", *args], check=True, timeout=10, capture_output=True,
                         text=True)
    return out.stdout


def xdotool_key(key: str) -> None:
    xdotool("key", key)


def xwd_screenshot(tmp_path: Path) -> np.ndarray:
    """The whole X screen as the audience would see it, via xwd + ImageMagick: (H, W, 3) int."""
    from PIL import Image

    xwd = tmp_path / "screen.xwd"
    png = tmp_path / "screen.png"
    subprocess.run(["xwd", "-root", "-silent", "-out", str(xwd)], check=True, timeout=20)
    subprocess.run(["convert", str(xwd), str(png)], check=True, timeout=20)
    with Image.open(png) as img:
        return np.asarray(img.convert("RGB")).astype(int)
