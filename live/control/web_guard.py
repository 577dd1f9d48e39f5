"""Who may talk to the web control page, and how much: the token, the host and origin checks,
the size and rate limits, and the counts of what was turned away.

Plain functions and small classes over strings and numbers (no web framework), so the rules
are read and tested on their own; ``web_server.py`` applies them to every request and every
WebSocket message.

- **Token.** Bound to loopback, the page is this machine's alone and needs none. Bound to any
  other address it requires the token printed at start: ``?token=`` in the URL (the printed
  URL and QR code carry it), an ``Authorization: Bearer`` header, or the cookie the page gets
  on its first load (so its own scripts, images and WebSocket carry it without the page
  handling it). Compared in constant time.
- **Host.** A loopback-bound page answers only requests addressed to a loopback name: a web
  page elsewhere that points its own domain at 127.0.0.1 (DNS rebinding) is refused.
- **Origin.** A browser sends ``Origin`` with every WebSocket and every POST: it must be the
  page's own (scheme, host and port of the request's ``Host``). Tools without a browser send
  none and are judged by the token alone.
- **Size and rate.** A message larger than ``MAX_MESSAGE_BYTES`` is refused (HTTP 413), a
  client over ``MESSAGES_PER_S`` (after a burst of ``MESSAGE_BURST``) is refused (429): a
  fader sends at most a message per animation frame, well under it.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections import Counter
from typing import Any, Callable
from urllib.parse import urlsplit

from phosphene.live.control.osc_server import PeerRateLimit

MAX_MESSAGE_BYTES = 4096         # one {"address", "args"} message; a preset name is <= 128 chars
MESSAGES_PER_S = 200.0           # per client: faders, pads and buttons together
MESSAGE_BURST = 400
MAX_CLIENTS_METERED = 256        # clients whose rate is tracked (the least recent forgotten)
TOKEN_COOKIE = "phosphene_token"
_LOOPBACK_NAMES = frozenset(("localhost", "localhost.localdomain", "ip6-localhost"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name, IPv6 with or without brackets) is this machine
    only."""
    host = host.strip("[]").split("%")[0].lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(18)


def token_matches(expected: str | None, given: str | None) -> bool:
    """No token expected: anyone (loopback). Otherwise the given one, compared in constant
    time."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def _host_name(host_header: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:8080`` -> ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def host_refusal(host_header: str | None, bound_loopback: bool) -> str | None:
    """Why a request's ``Host`` is refused, or None. A loopback-bound page only answers
    loopback names (DNS rebinding); one bound to the network answers any (the token guards
    it: a phone may know the machine by any of its names)."""
    if not host_header:
        return "the request has no Host header"
    if bound_loopback and not is_loopback(_host_name(host_header)):
        return (f"Host {host_header!r} is not this machine: the control page is bound to "
                "loopback and answers only 127.0.0.1 / localhost")
    return None


def origin_refusal(origin: str | None, host_header: str | None, scheme: str = "http") -> str | None:
    """Why a request's ``Origin`` is refused, or None: none given (not a browser), or the
    page's own origin."""
    if origin is None:
        return None
    if origin == "null":
        return "Origin 'null' (a file or sandboxed page) may not control the show"
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"Origin {origin!r} is not a web origin"
    if host_header is None or parts.netloc.lower() != host_header.lower() \
            or parts.scheme != scheme:
        return (f"Origin {origin!r} is not this page's ({scheme}://{host_header}): only the "
                "control page itself may send to the show")
    return None


class ClientRateLimit(PeerRateLimit):
    """The OSC server's token bucket, metering a browser client (an address, a connection):
    ``burst`` at once, then ``per_s`` a second, the ``MAX_CLIENTS_METERED`` most recent."""

    def __init__(self, per_s: float = MESSAGES_PER_S, burst: int = MESSAGE_BURST,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(per_s, burst, clock, max_peers=MAX_CLIENTS_METERED)


class WebStats:
    """What the web surface accepted and turned away (thread-safe), for the run report.
    Rejections are counted by reason (``bad_json``, ``too_large``, ``rate_limited``,
    ``bad_token``, ``bad_origin``, ``bad_host``, ``invalid``, ``reply``), accepted messages by
    address (bounded like the OSC server's counts)."""

    MAX_KEYS = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.connections = 0              # WebSockets opened
        self.action_errors = 0            # failures found later, answered to the page

    def accept(self, address: str) -> None:
        with self._lock:
            key = address if address in self.accepted or len(self.accepted) < self.MAX_KEYS \
                else "<other>"
            self.accepted[key] += 1

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    def failed_later(self) -> None:
        with self._lock:
            self.action_errors += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"accepted": dict(self.accepted), "rejected": dict(self.rejected),
                    "connections": self.connections, "action_errors": self.action_errors}
