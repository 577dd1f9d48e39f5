"""``phosphene osc``: the OSC namespace (``--list`` as text, ``--markdown`` as the README table),
and layouts for the control surfaces performers own (``--layout``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from phosphene.commands._args import UsageError

LAYOUTS = ("open-stage-control", "touchosc")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "osc", help="show the OSC namespace (every address, its arguments and ranges), or "
        "write a layout for Open Stage Control or TouchOSC",
        description="Print the OSC namespace phosphene live listens to (default 127.0.0.1:9000; "
                    "see phosphene live --osc-host/--osc-port), or write a control layout "
                    "generated from it and a preset: faders for the parameters, modes and "
                    "effects, buttons for keyframes, presets and clips, XY pads.")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--list", action="store_true",
                     help="aligned text, one address a line (default)")
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table (as in the README)")
    fmt.add_argument("--layout", choices=LAYOUTS, default=None,
                     help="write a layout: an Open Stage Control session (.json) or a "
                     "TouchOSC layout (.tosc)")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                   help="where --layout writes (required for touchosc; open-stage-control "
                   "prints to stdout without it)")
    p.add_argument("--preset", default="default",
                   help="the preset whose parameters, effects and keyframes the layout holds "
                   "(a shipped name or a .yaml path); its folder's presets get buttons")
    p.add_argument("--bank", type=Path, default=None, metavar="DIR",
                   help="a clip bank: a play and a stop button per clip")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # start-up time: the routes load the show's parameter tables
    from phosphene.live.control.routes import format_namespace, markdown_table

    if args.layout is not None:
        return write_layout(args)
    print(markdown_table() if args.markdown else format_namespace())
    return 0


def write_layout(args: argparse.Namespace) -> int:
    # start-up time: presets, the bank and the layout writers load only for --layout
    from phosphene.live.control.surface import build_surface
    from phosphene.live.runtime.actions import namespace_context
    from phosphene.live.runtime.overlay_info import keyframe_label
    from phosphene.live.show.catalog import PresetCatalog
    from phosphene.live.show.presets import load_preset
    from phosphene.models.bank import Bank

    if args.layout == "touchosc" and args.output is None:
        raise UsageError("--layout touchosc writes a binary file: give -o FILE.tosc")
    preset, path = load_preset(args.preset)
    clips = Bank(args.bank).names() if args.bank is not None else []
    surface = build_surface(
        namespace_context(preset), preset=preset.name, effects=preset.effect_names(),
        keyframes=[keyframe_label(preset, i) for i in range(len(preset.keyframes))],
        presets=PresetCatalog(path.parent).names(), clips=clips)
    if args.layout == "open-stage-control":
        # start-up time: one writer per layout
        from phosphene.live.control.layout_open_stage_control import open_stage_control_session

        text = json.dumps(open_stage_control_session(surface), indent=2) + "\n"
        if args.output is None:
            sys.stdout.write(text)
            return 0
        _write_atomically(args.output, text.encode("utf-8"))
    else:
        # start-up time: one writer per layout
        from phosphene.live.control.layout_touchosc import touchosc_document

        document = touchosc_document(surface)
        with tempfile.TemporaryDirectory(dir=args.output.parent or ".") as scratch:
            staged = Path(scratch) / args.output.name
            document.save(str(staged))
            _write_atomically(args.output, staged.read_bytes())
    print(f"phosphene osc: {args.layout} layout for preset {preset.name} written to "
          f"{args.output}", file=sys.stderr)
    return 0


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
