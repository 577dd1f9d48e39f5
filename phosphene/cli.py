"""The ``phosphene`` console script: one argparse parser, one subcommand per module of
:mod:`phosphene.commands`.

A handler receives the parsed namespace and returns an exit code (or None for 0). Exit codes:
0 done, 1 failed while running (a :class:`PhospheneError`, printed as one line), 2 the command
line is wrong (argparse's errors and :class:`UsageError`), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from phosphene import __version__
from phosphene.commands import COMMANDS
from phosphene.commands._args import USAGE_ERROR, UsageError, usage
from phosphene.errors import PhospheneError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phosphene",
        description="Real-time audio-visual performance: sound drives a StyleGAN2 generator "
        "through an OpenGL effect chain.",
    )
    parser.add_argument("--version", action="version", version=f"phosphene {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        return usage(parser)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("phosphene: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`phosphene analyze x.wav --onsets | head`): not an error.
        # Point stdout at devnull so Python's exit-time flush doesn't complain again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the CLI's one place that turns errors into a line
        if args.debug:
            raise
        if isinstance(exc, PhospheneError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        print(f"phosphene: error: {message}", file=sys.stderr)
        return USAGE_ERROR if isinstance(exc, UsageError) else 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
