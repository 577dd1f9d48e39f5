"""Reading OSC datagrams off the wire: bytes -> messages, or one ``MalformedPacket``.

python-osc parses messages for us, but on some broken input it logs a warning through the root
logger (an argument type it does not know, a bundle element that is neither a message nor a
bundle) and carries on with whatever it could read: a burst of junk then floods the log with
one line per packet, and a message whose arguments were skipped may even be accepted. So the
structure is checked here first; python-osc only ever sees what it parses without complaint,
and every malformed packet becomes a ``MalformedPacket`` with a short ``kind`` for the server
to count and log once.
"""

from __future__ import annotations

import struct

from pythonosc import osc_message
from pythonosc.parsing import osc_types

BUNDLE_PREFIX = b"#bundle\x00"
# argument type tags python-osc reads (OSC 1.0 plus the common 1.1 extensions); any other tag
# has an unknown size, so nothing after it can be read
SUPPORTED_TAGS = frozenset("ihfdsbrmtTFN[]")
MAX_BUNDLE_DEPTH = 8            # bundles inside bundles: deeper is an attack, not a show

# the exceptions python-osc's low-level readers let out on broken bytes
_READ_ERRORS = (osc_types.ParseError, osc_message.ParseError, struct.error, ValueError,
                IndexError, OverflowError)


class MalformedPacket(Exception):
    """A datagram that is not valid OSC. ``kind`` names the problem in a word or two (used to
    log each kind once); ``detail`` says what exactly was wrong."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def parse_packet(data: bytes) -> list[osc_message.OscMessage]:
    """Every message in a datagram (a message, or a bundle of them, nested or not), in order.
    Bundle time tags are not honoured: the server acts on a message when it arrives."""
    if data.startswith(BUNDLE_PREFIX):
        return list(_bundle_messages(data, depth=1))
    if data.startswith(b"/"):
        return [_message(data)]
    raise MalformedPacket("not OSC", "a packet starts with '/' (a message) or '#bundle'")


def _message(data: bytes) -> osc_message.OscMessage:
    try:
        _address, index = osc_types.get_string(data, 0)
        if index < len(data):
            tags, index = osc_types.get_string(data, index)
            if not tags.startswith(","):
                raise MalformedPacket("bad type tags", "the type tag string must start with ','")
            unknown = sorted(set(tags[1:]) - SUPPORTED_TAGS)
            if unknown:
                raise MalformedPacket("unknown argument type",
                                      f"argument type(s) {''.join(unknown)!r} are not OSC types "
                                      f"this server reads ({''.join(sorted(SUPPORTED_TAGS))})")
            _check_arguments(data, index, tags[1:])
        return osc_message.OscMessage(data)
    except _READ_ERRORS as exc:
        raise MalformedPacket("bad message", _reason(exc)) from None


def _check_arguments(data: bytes, index: int, tags: str) -> None:
    """Every argument the type tags announce must be there in full: python-osc reads a float
    from no bytes as 0.0 and from 3 bytes as whatever they pad to, so a truncated packet
    would set a value nobody sent."""
    for number, tag in enumerate(tags, start=1):
        if tag in _FIXED_SIZE:
            size = _FIXED_SIZE[tag]
        elif tag == "s":
            end = data.find(b"\x00", index)
            if end < 0:
                raise MalformedPacket("truncated", f"argument {number} ('s') has no end")
            size = (end - index) // 4 * 4 + 4           # the string, its NUL, padded to 4
        elif tag == "b":
            if index + 4 > len(data):
                raise MalformedPacket("truncated", f"argument {number} ('b') has no size")
            length = struct.unpack(">i", data[index:index + 4])[0]
            if length < 0:
                raise MalformedPacket("bad message", f"argument {number} ('b') has size {length}")
            size = 4 + (length + 3) // 4 * 4
        else:                                           # T F N [ ]: no data
            size = 0
        if index + size > len(data):
            raise MalformedPacket("truncated", f"argument {number} ({tag!r}) needs {size} "
                                  f"bytes, {len(data) - index} left")
        index += size


# bytes of data per argument type tag (strings and blobs say their own size)
_FIXED_SIZE = {"i": 4, "f": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8}


def _bundle_messages(data: bytes, depth: int):
    if depth > MAX_BUNDLE_DEPTH:
        raise MalformedPacket("bad bundle", f"bundles nested more than {MAX_BUNDLE_DEPTH} deep")
    try:
        _timetag, index = osc_types.get_date(data, len(BUNDLE_PREFIX))
        while index < len(data):
            size, index = osc_types.get_int(data, index)
            if size <= 0 or index + size > len(data):
                raise MalformedPacket("bad bundle", f"element size {size} does not fit the "
                                      f"{len(data) - index} bytes left")
            element = data[index:index + size]
            index += size
            if element.startswith(BUNDLE_PREFIX):
                yield from _bundle_messages(element, depth + 1)
            elif element.startswith(b"/"):
                yield _message(element)
            else:
                raise MalformedPacket("bad bundle", "an element is neither a message nor a bundle")
    except _READ_ERRORS as exc:
        raise MalformedPacket("bad bundle", _reason(exc)) from None


def _reason(exc: BaseException) -> str:
    # python-osc wraps its reasons in tuples ("Found incorrect datagram, ignoring it", inner)
    args = [str(a) for a in exc.args if str(a)]
    return "; ".join(args) or type(exc).__name__
