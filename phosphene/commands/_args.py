"""What every subcommand shares: the argument types, the usage helper and the usage error.

Two exit codes, one rule: 2 when the command line is wrong (argparse's own errors, a value an
argument type below refuses, a :class:`UsageError` a handler raises for a combination of
options), 1 when the command failed while running (a missing file, a bad checkpoint, ...).

The types are argparse ``type=`` callables: a bad value is refused while parsing, before any
heavy import or model load, with argparse's usage line and ``argument --size: <why>``.
Everything here is cheap to import: ``phosphene --help`` loads it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from phosphene.errors import PhospheneError

USAGE_ERROR = 2  # exit code of a wrong command line (argparse's, kept for ours)

# --device of the commands that run a generator: the names phosphene.models.device accepts
DEVICE_HELP = "auto (default), cpu, cuda, cuda:N, mps"


class UsageError(PhospheneError, argparse.ArgumentTypeError):
    """The command line is wrong; exit code 2.

    Raised by the argument types below (argparse prints it after the usage line) and by a
    handler that finds a bad combination of options (``phosphene.cli.main`` prints the one line).
    """


def usage(parser: argparse.ArgumentParser) -> int:
    """A command run without its subcommand: its help on stderr, exit code 2."""
    parser.print_help(sys.stderr)
    return USAGE_ERROR


def add_subcommands(parser: argparse.ArgumentParser, dest: str,
                    metavar: str) -> argparse._SubParsersAction:
    """The subparsers of a command that needs one (``models``, ``bench`` ...); the command on
    its own prints its usage."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    parser.set_defaults(func=lambda args: usage(parser))
    return sub


def add_device_option(parser: argparse.ArgumentParser, default: str | None = "auto",
                      help: str | None = DEVICE_HELP, **kwargs) -> None:
    """``--device``: the torch device a generator runs on (checked when it is picked)."""
    parser.add_argument("--device", default=default, help=help, **kwargs)


# -- sizes ---------------------------------------------------------------------------------------

def parse_size(text: str, *, minimum: int = 16, maximum: int | None = 8192) -> tuple[int, int]:
    """``"1920x1080"`` (or ``1920X1080``, spaces allowed) -> ``(1920, 1080)``, each side in
    ``minimum..maximum`` (no upper bound when ``maximum`` is None)."""
    bounds = (f" between {minimum} and {maximum}" if maximum is not None
              else " with positive sides" if minimum <= 1 else f" with sides of at least {minimum}")
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size must be WIDTHxHEIGHT{bounds}, like 1920x1080; "
                         f"got {text!r}") from None
    if not all(minimum <= v and (maximum is None or v <= maximum) for v in (w, h)):
        raise UsageError(f"size must be WIDTHxHEIGHT{bounds}, like 1920x1080; got {text!r}")
    return w, h


def size_type(minimum: int = 16, maximum: int | None = 8192) -> Callable[[str], tuple[int, int]]:
    """An argparse type for one ``WxH`` size within bounds."""
    def size(text: str) -> tuple[int, int]:
        return parse_size(text, minimum=minimum, maximum=maximum)
    return size


def size_list_type(minimum: int = 16,
                   maximum: int | None = 8192) -> Callable[[str], list[tuple[int, int]]]:
    """An argparse type for ``1280x720,1920x1080``."""
    def sizes(text: str) -> list[tuple[int, int]]:
        return [parse_size(part, minimum=minimum, maximum=maximum) for part in text.split(",")]
    return sizes


# Canvas and video sizes: what a GL framebuffer and an H.264 encoder are given
canvas_size = size_type(16, 8192)
# Effect previews and benchmarks: any positive size
any_size = size_type(1, None)
any_sizes = size_list_type(1, None)


# -- numbers -------------------------------------------------------------------------------------

def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"not a number: {text!r}") from None
    if not value > 0:
        raise UsageError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise UsageError(f"must be at least 1, got {value}")
    return value


def positive_int_list(text: str) -> list[int]:
    """``"1,8"`` -> ``[1, 8]``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"expected positive integers, got {text!r}")
    return values


def port(text: str) -> int:
    """A UDP/TCP port; 0 asks the system for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise UsageError(f"port must be 0..65535 (0 = any free port), got {value}")
    return value


def host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``[HOST:]PORT`` -> ``(host, port)``: ``8080``, ``0.0.0.0:8080``, ``[::1]:8080``; the
    host defaults to loopback (opening a surface to the network is explicit)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = default_host, text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"{text!r}: write an IPv6 address in brackets, like [::1]:8080")
    if not host:
        host = default_host
    return host, port(port_text)


MAX_SEEDS = 1024


def seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``; the error names the bad part."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
            else:
                lo_i = hi_i = int(part)
        except ValueError:
            raise UsageError(f"{part!r} in {text!r} is not a seed or a range like 0-7") from None
        # counted before expanding: a range like 0-4000000000 must not fill the memory
        if len(values) + hi_i - lo_i + 1 > MAX_SEEDS:
            raise UsageError(f"{text!r}: at most {MAX_SEEDS} images per grid")
        values.extend(range(lo_i, hi_i + 1))
    if any(not 0 <= s < 2**32 for s in values):
        raise UsageError(f"{text!r}: seeds must be in 0..4294967295")
    return values


def precisions(text: str) -> list[str]:
    """``fp32``, ``fp16`` or ``fp32,fp16``."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in ("fp32", "fp16") for v in values):
        raise UsageError(f"precision must be fp32, fp16 or both, got {text!r}")
    return values


# -- names ---------------------------------------------------------------------------------------

def clip_name(text: str) -> str:
    """A clip name in the bank (a name, never a path)."""
    # start-up time: the bank package loads numpy and pydantic
    from phosphene.models.bank.names import validate_name

    try:
        return validate_name(text)
    except PhospheneError as exc:
        raise UsageError(str(exc)) from exc


def tag_list(text: str) -> list[str]:
    """``"choir, low"`` -> ``["choir", "low"]`` (empty parts dropped)."""
    return [t.strip() for t in text.split(",") if t.strip()]
