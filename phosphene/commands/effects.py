"""``phosphene effects``: list the effect chain's building blocks, check or preview shaders."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from phosphene.commands._args import any_size
from phosphene.errors import PhospheneError

# What `effects --preview` and `bench render` run: every built-in effect, in the listed order.
DEFAULT_CHAIN = ["crossfade", "color", "flash", "transform", "feedback", "chroma", "mirror",
                 "vignette"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "effects", help="list the effects and their parameters (name, range, default)",
        description="List the built-in effects a preset's chain can name, with each parameter's "
        "range and default. Parameters are addressed as <effect>.<param> (e.g. flash.amount).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", nargs="+", metavar="FILE.glsl",
                   help="compile user effect shaders (headless) and report errors")
    p.add_argument("--preview", nargs="*", metavar="EFFECT",
                   help="open a window running these effects (default: all) on a moving test "
                        "pattern, parameters swept over time")
    p.add_argument("--monitor", type=int, default=None, help="monitor for --preview "
                   "(see `phosphene devices`)")
    p.add_argument("--fullscreen", action="store_true", help="--preview fullscreen")
    p.add_argument("--size", type=any_size, default="1280x720",
                   help="canvas size for --preview (WxH)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # start-up time: effect files are read from the package
    from phosphene.render.effects import builtin_effects

    if args.check:
        return _check(args.check)
    if args.preview is not None:
        return _preview(args)
    specs = builtin_effects()
    if args.json:
        print(json.dumps([{"name": s.name, "doc": s.doc,
                           "params": [{"name": p.name, "min": p.minimum, "max": p.maximum,
                                       "default": p.default, "doc": p.doc} for p in s.params]}
                          for s in specs], indent=2))
        return 0
    rows = [(f"{s.name}.{p.name}", f"{p.minimum:g}..{p.maximum:g}", f"{p.default:g}", p.doc)
            for s in specs for p in s.params]
    name_w = max(len(r[0]) for r in rows)
    range_w = max(len(r[1]) for r in rows)
    for s in specs:
        print(f"{s.name}: {s.doc}")
        for name, span, default, doc in rows:
            if name.split(".", 1)[0] == s.name:
                print(f"  {name:<{name_w}}  {span:<{range_w}}  default {default:<4}  {doc}")
        print()
    print("A preset names the chain as a list, e.g. [crossfade, color, flash, feedback]; "
          "'output' is added last. User shaders: give a .glsl path (see README).")
    return 0


def _check(paths: list[str]) -> int:
    """Compile each file on a headless context; print OK or the compiler's message."""
    # start-up time: the effect chain loads numpy (moderngl once drawing)
    from phosphene.render.chain import EffectChain
    from phosphene.render.context import create_headless_context

    ctx = create_headless_context()
    failed = 0
    for path in paths:
        try:
            chain = EffectChain(ctx, [path], (16, 16))
        except PhospheneError as exc:
            failed += 1
            print(f"FAIL {exc}")
            continue
        names = ", ".join(k for k in chain.params() if not k.startswith("output."))
        print(f"OK   {path}  params: {names or 'none'}")
        chain.release()
    return 1 if failed else 0


def pattern_frame(width: int, height: int, t: float) -> Any:
    """A moving colour field (HWC uint8) standing in for the generator in previews/benchmarks."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.5 * np.sin(x / width * 6.28 + t)
    g = 0.5 + 0.5 * np.sin(y / height * 6.28 + 1.3 * t)
    b = 0.5 + 0.5 * np.sin((x + y) / (width + height) * 12.0 - 0.7 * t)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def _preview(args: argparse.Namespace) -> int:
    import math
    import time

    # start-up time: the effect chain loads numpy, the window glfw once opened
    from phosphene.render.chain import EffectChain
    from phosphene.render.window import Window

    size = args.size
    effects = args.preview or DEFAULT_CHAIN
    with Window(size, title="phosphene effects preview", monitor=args.monitor,
                fullscreen=args.fullscreen, overlay=True) as window:
        chain = EffectChain.from_names(window.ctx, effects, size=size)
        params = chain.params()
        print("keys: f fullscreen, o overlay, Esc/q quit", file=sys.stderr)
        t0 = time.perf_counter()
        next_frame = 0.0
        while window.poll():
            t = time.perf_counter() - t0
            if t >= next_frame:  # a slow "generator": 8 frames per second
                chain.push_frame(pattern_frame(256, 256, t))
                next_frame = t + 0.125
            # sweep each parameter gently around its default so every effect shows
            sweep = {}
            for i, (key, p) in enumerate(params.items()):
                if key.startswith("output.") or key == "crossfade.position":
                    continue
                span = (p.maximum - p.minimum) * 0.15
                sweep[key] = p.default + span * math.sin(0.5 * t + i)
            sweep["crossfade.position"] = min((t - (next_frame - 0.125)) / 0.125, 1.0)
            chain.set_params(sweep)
            chain.reload_if_changed()
            window.present(chain.render(t))
        chain.release()
    return 0
