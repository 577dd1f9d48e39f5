"""The ``phosphene`` console script: one argparse parser, subcommands contributed by each area.

Each area module below exposes ``register(subparsers)`` (adds its subcommands) and may expose
``register_bench(bench_subparsers)`` (adds ``phosphene bench <name>``). Registration must stay
cheap: heavy imports (torch, moderngl, sounddevice) happen inside the command handlers, so that
``phosphene --help`` is instant.

A handler is set with ``parser.set_defaults(func=handler)``; it receives the parsed namespace
and returns an exit code (or None for 0).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from phosphene import __version__
from phosphene.errors import PhospheneError

# Areas that contribute subcommands, in the order they appear in --help. A module listed here
# that is missing is skipped, so an area can be developed without breaking the others.
COMMAND_MODULES = (
    "phosphene.live.cli",
    "phosphene.live.osc_cli",
    "phosphene.live.live_cli",
    "phosphene.render.cli",
    "phosphene.models.cli",
    "phosphene.models.pregen_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phosphene",
        description="Real-time audio-visual performance: sound drives a StyleGAN2 generator "
        "through an OpenGL effect chain.",
    )
    parser.add_argument("--version", action="version", version=f"phosphene {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = subparsers.add_parser("bench", help="measure speed on this machine")
    bench_subparsers = bench.add_subparsers(dest="bench_command", metavar="WHAT")
    bench.set_defaults(func=lambda args: _missing_subcommand(bench))

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_subparsers)
    return parser


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
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
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
