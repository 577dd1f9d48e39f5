"""Clip names are names, never paths.

A name arrives from the command line or from the network (an OSC ``/phosphene/clip/play``),
and becomes part of file names inside the bank folder. So it is checked against a small safe
alphabet: no separators, no dots (so no ``..`` and no extension games), no leading dash
(it would read as an option on a command line), and a bounded length.
"""

from __future__ import annotations

import re
import unicodedata

from phosphene.errors import PhospheneError

MAX_NAME_LENGTH = 64
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
# ``bank`` would give the sidecar ``bank.json``, which is the manifest itself.
_RESERVED = {"bank"}


class BankNameError(PhospheneError):
    """A clip name that is not allowed (it names the name and the rule it broke)."""


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid clip name, else raise ``BankNameError``."""
    if not isinstance(name, str):
        raise BankNameError(f"clip name must be a string, got {type(name).__name__}")
    if not name:
        raise BankNameError("clip name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise BankNameError(f"clip name {name[:20]!r}... is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME_PATTERN.fullmatch(name):
        raise BankNameError(
            f"clip name {name!r} is not allowed: use letters, digits, '_' and '-' "
            "(no spaces, dots or slashes; not starting with '-')")
    if name.lower() in _RESERVED:
        raise BankNameError(f"clip name {name!r} is reserved")
    return name


def name_from_filename(stem: str) -> str:
    """A valid clip name made from a file name stem (for ``bank import`` without ``--name``)."""
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_stem).strip("_-")[:MAX_NAME_LENGTH] or "clip"
    if name.lower() in _RESERVED:
        name = f"{name}_clip"
    return validate_name(name)
