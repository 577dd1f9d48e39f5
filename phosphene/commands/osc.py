"""``phosphene osc``: the OSC namespace (``--list`` as text, ``--markdown`` as the README table)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "osc", help="show the OSC namespace (every address, its arguments and ranges)",
        description="Print the OSC namespace phosphene live listens to (default 127.0.0.1:9000; "
                    "see phosphene live --osc-host/--osc-port).")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--list", action="store_true",
                     help="aligned text, one address a line (default)")
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table (as in the README)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # start-up time: the routes load the show's parameter tables
    from phosphene.live.control.routes import format_namespace, markdown_table

    print(markdown_table() if args.markdown else format_namespace())
    return 0
