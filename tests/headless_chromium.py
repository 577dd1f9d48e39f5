"""A real headless Chromium (Debian's ``chromium``), driven through the DevTools protocol: load a
page, read it with JavaScript, press and drag with real mouse events, take a screenshot.

The protocol is JSON over one WebSocket (``websockets``' own client); only the handful of
commands the tests need are wrapped. Chromium writes the port it picked to
``DevToolsActivePort`` in its profile folder, so no port is guessed.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

TIMEOUT_S = 60.0


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class HeadlessChromium:
    """``with HeadlessChromium() as browser: browser.open(url) ...``"""

    def __init__(self, width: int = 1100, height: int = 900, *, mobile: bool = False,
                 scale: float = 1.0):
        exe = chromium_path()
        assert exe, "chromium is not installed: run scripts/setup.sh --dev"
        self.width, self.height, self.mobile, self.scale = width, height, mobile, scale
        self._profile = tempfile.TemporaryDirectory(prefix="phosphene-chromium-")
        self._process = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--mute-audio",
             "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        self._socket = None
        self._closing = contextlib.ExitStack()
        self.console: list[str] = []

    # -- connection ---------------------------------------------------------------------------
    def __enter__(self) -> "HeadlessChromium":
        port = self._devtools_port()
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert pages, "chromium opened no page"
        self._socket = self._closing.enter_context(connect(
            pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=TIMEOUT_S))
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  width=self.width, height=self.height, deviceScaleFactor=self.scale,
                  mobile=self.mobile)
        if self.mobile:
            self.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=5)
        return self

    def _devtools_port(self) -> int:
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self._process.returncode}")
            if marker.is_file():
                lines = marker.read_text().splitlines()
                if lines and lines[0].strip().isdigit():
                    return int(lines[0])
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    def __exit__(self, *exc) -> None:
        try:
            self._closing.close()
        finally:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
            self._profile.cleanup()

    def call(self, method: str, **params: Any) -> dict:
        """One DevTools command; its result (events arriving meanwhile are set aside, console
        messages kept in ``console``)."""
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=TIMEOUT_S))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in args))
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.console.append("exception: " + str(details.get("exception", {})
                                                        .get("description", details)))

    # -- the page -----------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", "the page to load")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what} ({expression}); console: "
                             f"{self.console[-5:]}")

    def box(self, selector: str) -> dict:
        """The element's box in CSS pixels, scrolled into view."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left, y: r.top, width: r.width, height: r.height}; })()")
        assert box, f"no element {selector} on the page"
        return box

    # -- the mouse ----------------------------------------------------------------------------
    def _mouse(self, kind: str, x: float, y: float, buttons: int) -> None:
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  buttons=buttons, clickCount=1)

    def click(self, selector: str) -> None:
        b = self.box(selector)
        x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        self._mouse("mouseMoved", x, y, 0)
        self._mouse("mousePressed", x, y, 1)
        self._mouse("mouseReleased", x, y, 0)

    def drag(self, selector: str, from_fraction: float, to_fraction: float, steps: int = 8) -> None:
        """Press on the element at ``from_fraction`` of its width, move to ``to_fraction``
        in ``steps``, release: a finger (or a mouse) moving a horizontal fader."""
        b = self.box(selector)
        y = b["y"] + b["height"] / 2
        xs = [b["x"] + b["width"] * (from_fraction + (to_fraction - from_fraction) * i / steps)
              for i in range(steps + 1)]
        self._mouse("mouseMoved", xs[0], y, 0)
        self._mouse("mousePressed", xs[0], y, 1)
        for x in xs[1:]:
            self._mouse("mouseMoved", x, y, 1)
        self._mouse("mouseReleased", xs[-1], y, 0)

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path
