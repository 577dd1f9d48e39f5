#!/usr/bin/env python3
"""Take the README's picture of the web control page: a headless engine plays the demo song
with the default preset (the built-in model), a headless Chromium at a phone's size opens the
page, moves a fader, and the page is captured.

    .venv/bin/python scripts/control_page_screenshot.py [-o docs/images/control-page.png]

Needs Debian's ``chromium`` (``scripts/setup.sh --dev``). The browser is driven by the tests'
DevTools helper (``tests/headless_chromium.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from headless_chromium import HeadlessChromium  # noqa: E402  (the tests' helper)
from live_engine_helpers import EngineRun  # noqa: E402

from phosphene.live.runtime.engine import EngineOptions  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path,
                        default=ROOT / "docs" / "images" / "control-page.png")
    parser.add_argument("--audio", type=Path, default=ROOT / "examples" / "demo.flac")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="how far into the song the picture is taken")
    args = parser.parse_args()
    options = EngineOptions(preset="default", audio_file=args.audio, output="none",
                            headless=True, osc_port=None, web=("127.0.0.1", 0),
                            size=(256, 256), fps=15, device="cpu")
    with EngineRun(options) as run, HeadlessChromium(412, 915, mobile=True, scale=2) as page:
        page.open(run.engine.web.url())
        page.wait_for("document.body.dataset.surface === 'ready' && "
                      "document.body.dataset.link === 'open'", "the page to connect")
        page.drag('input[data-param="psi"]', 0.35, 0.45)
        time.sleep(args.seconds)            # the song plays on: meters, tempo, the preview
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for("document.getElementById('preview').naturalWidth > 0", "the preview")
        page.screenshot(args.output)
        run.engine.stop()
        run.wait()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
