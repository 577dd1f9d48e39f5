"""The ``phosphene`` subcommands: one module per subcommand, listed here in ``--help`` order.

Each module has ``register(subparsers)``, which adds its parser and sets ``func`` (the handler:
parsed namespace in, exit code out). Registration stays cheap: torch, moderngl and
sounddevice are imported inside the handlers, so ``phosphene --help`` is instant. What the
commands share (argument types, the usage helper, the usage error) is in ``_args``.
Library code never imports from here.
"""

from __future__ import annotations

from phosphene.commands import (analyze, bank, bench, devices, effects, live, models, osc, pregen,
                                render)

COMMANDS = (bench, devices, analyze, osc, live, render, effects, models, pregen, bank)

__all__ = ["COMMANDS"]
