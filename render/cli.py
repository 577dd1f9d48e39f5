"""``phosphene effects`` (list the effect chain's building blocks, check or preview shaders) and
``phosphene bench render`` (milliseconds per frame of the chain)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# What `bench render` and `effects --preview` run: every built-in effect, in the listed order.
DEFAULT_BENCH_CHAIN = ["crossfade", "color", "flash", "transform", "feedback", "chroma", "mirror",
                       "vignette"]


def register(subparsers: Any) -> None:
    _add_monitors_to_devices()
    # `phosphene render` (offline render, issue 6) lives in its own module
    from phosphene.render.offline_cli import register_render

    register_render(subparsers)
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
    p.add_argument("--size", default="1280x720", help="canvas size for --preview (WxH)")
    p.set_defaults(func=_effects)


def _add_monitors_to_devices() -> None:
    """`phosphene devices` (the live area's command) gets a "Monitors" section."""
    try:
        from phosphene.live.cli import add_device_section
    except ImportError:
        return
    from phosphene.render.monitors import monitor_lines

    add_device_section("Monitors", monitor_lines)


def register_bench(bench_subparsers: Any) -> None:
    from phosphene.render.offline_cli import register_bench_offline

    register_bench_offline(bench_subparsers)
    p = bench_subparsers.add_parser(
        "render", help="effect chain cost per frame (headless EGL)",
        description="Milliseconds per frame of the effect chain at several output sizes, on a "
        "headless EGL context, plus frame upload and readback.")
    p.add_argument("--sizes", default="1280x720,1920x1080", help="comma-separated WxH list")
    p.add_argument("--frames", type=int, default=30, help="frames timed per size")
    p.add_argument("--frame-size", type=int, default=512, help="generator frame side in pixels")
    p.add_argument("--effects", nargs="+", default=DEFAULT_BENCH_CHAIN, metavar="EFFECT",
                   help="the chain to time (default: every built-in effect)")
    p.set_defaults(func=_bench)


def _parse_size(text: str) -> tuple[int, int]:
    from phosphene.errors import PhospheneError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PhospheneError(f"size {text!r} must look like 1280x720") from None
    if w < 1 or h < 1:
        raise PhospheneError(f"size {text!r} must be positive")
    return w, h


def _effects(args: argparse.Namespace) -> int:
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
    from phosphene.errors import PhospheneError
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


def test_pattern(width: int, height: int, t: float) -> Any:
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

    from phosphene.render.chain import EffectChain
    from phosphene.render.window import Window

    size = _parse_size(args.size)
    effects = args.preview or DEFAULT_BENCH_CHAIN
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
                chain.push_frame(test_pattern(256, 256, t))
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


def _bench(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from phosphene.render.chain import EffectChain
    from phosphene.render.context import create_headless_context, describe
    from phosphene.render.readback import AsyncReadback

    sizes = [_parse_size(s) for s in args.sizes.split(",")]
    ctx = create_headless_context()
    print(f"renderer: {describe(ctx)}")
    print(f"chain: {', '.join(args.effects)} (+ output); generator frame "
          f"{args.frame_size}x{args.frame_size} uint8, {args.frames} frames per size")
    frame = test_pattern(args.frame_size, args.frame_size, 0.0)
    float_frame = (frame.transpose(2, 0, 1)[None].astype(np.float32) / 127.5) - 1.0
    # "cpu ms" is CPU time of all our threads (llvmpipe rasterises on several) per frame: on a
    # shared machine it stays put when other jobs slow the wall clock down.
    print(f"{'output':>10}  {'chain ms':>9}  {'chain cpu ms':>12}  {'upload ms':>9}  "
          f"{'float->u8 ms':>12}  {'readback ms':>11}  {'total ms':>8}")
    for w, h in sizes:
        chain = EffectChain.from_names(ctx, args.effects, size=(w, h))
        readback = AsyncReadback(ctx, w, h)
        chain.set_params({"feedback.decay": 0.8, "flash.amount": 0.2, "color.hue": 30.0,
                          "mirror.segments": 6.0, "chroma.amount": 0.01, "vignette.amount": 0.5}
                         if all(e in chain.effect_names for e in DEFAULT_BENCH_CHAIN) else {})
        chain.push_frame(frame)
        for _ in range(3):  # warm-up: shader compilation and first allocations
            chain.render(0.0)
        ctx.finish()

        def timed(fn: Any) -> float:
            return timed_both(fn)[0]

        def timed_both(fn: Any) -> tuple[float, float]:
            start, cpu_start = time.perf_counter(), time.process_time()
            for i in range(args.frames):
                fn(i)
            ctx.finish()
            return (1000.0 * (time.perf_counter() - start) / args.frames,
                    1000.0 * (time.process_time() - cpu_start) / args.frames)

        chain_ms, chain_cpu_ms = timed_both(lambda i: chain.render(i / 60.0))
        upload_ms = timed(lambda i: chain.push_frame(frame))
        convert_ms = timed(lambda i: chain.frames.converter(float_frame))
        readback_ms = timed(lambda i: readback.submit(chain.canvas))
        readback.drain()

        def whole(i: int) -> None:
            chain.push_frame(frame)
            readback.submit(chain.render(i / 60.0))

        total_ms = timed(whole)
        readback.drain()
        print(f"{w:>5}x{h:<4}  {chain_ms:9.2f}  {chain_cpu_ms:12.2f}  {upload_ms:9.2f}  "
              f"{convert_ms:12.2f}  {readback_ms:11.2f}  {total_ms:8.2f}")
        readback.release()
        chain.release()
    return 0
