"""A browser's message to the show: ``{"address": "/phosphene/param/psi", "args": [0.5]}``,
judged the way an OSC message is, and answered with an HTTP status and a JSON body.

The same path as OSC (``osc_server.OscRouter``): a message shaped like one of phosphene's
replies is refused (``routes.is_reply``), everything else goes through ``routes.validate``
against the running scene's namespace, and what passes becomes a ``ControlEvent`` (origin
``"web"``) on the engine's one event queue, stamped with the audio clock. A status request is
answered at once with the status as JSON. Nothing here knows the web framework: the server
hands in the raw bytes (WebSocket text or a POST body) and sends back what it gets.

Answers: ``(200, status)`` for ``/phosphene/status``, ``(202, {"ok": true})`` for a queued
message, and ``{"error": why}`` with 400 (bad JSON, wrong arguments, a reply), 404 (no such
address), 413 (too large) or 429 (too many).
"""

from __future__ import annotations

import json
import queue
from typing import Any, Callable

from phosphene.live.control.routes import NamespaceContext, Rejected, find_route, is_reply, validate
from phosphene.live.control.web_guard import MAX_MESSAGE_BYTES, ClientRateLimit, WebStats
from phosphene.live.show.events import ControlEvent

STATUS_ADDRESS = "/phosphene/status"

Answer = tuple[int, dict[str, Any]]


class WebIntake:
    """Judges messages from the page for one engine (any thread)."""

    def __init__(self, events: "queue.Queue[ControlEvent]", clock: Callable[[], int],
                 context: Callable[[], NamespaceContext], status: Callable[[], dict],
                 stats: WebStats, limit: ClientRateLimit | None = None):
        self.events, self.clock, self.context, self.status = events, clock, context, status
        self.stats = stats
        self.limit = limit or ClientRateLimit()

    def handle_bytes(self, data: bytes | str, client: Any, answerable: bool = False) -> Answer:
        """One raw message from ``client`` (a connection or an address: the rate limit goes
        by it). ``answerable``: a failure found later (an unknown clip) can still be sent to
        ``client`` (a WebSocket); the event carries ``reply_to=("web", client)``."""
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if len(raw) > MAX_MESSAGE_BYTES:
            self.stats.reject("too_large")
            return 413, {"error": f"message of {len(raw)} bytes; at most {MAX_MESSAGE_BYTES}"}
        if not self.limit.allow(client):
            self.stats.reject("rate_limited")
            return 429, {"error": "too many messages: slow down (the rest are dropped)"}
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self.stats.reject("bad_json")
            return 400, {"error": f"not JSON: {exc}"}
        return self.handle(message, client if answerable else None)

    def handle(self, message: Any, reply_to: Any = None) -> Answer:
        shape = _shape_problem(message)
        if shape is not None:
            self.stats.reject("bad_json")
            return 400, {"error": shape}
        address, args = message["address"], list(message.get("args", []))
        if is_reply(address, args):
            self.stats.reject("reply")
            return 400, {"error": f"{address} with these arguments is a reply; replies are "
                         "never answered", "address": address}
        try:
            route, converted = validate(address, args, self.context())
        except Rejected as exc:
            self.stats.reject("invalid")
            code = 404 if find_route(address) is None else 400
            return code, {"error": str(exc), "address": address}
        self.stats.accept(address)
        if route.pattern == STATUS_ADDRESS:
            return 200, self.status()
        self.events.put(ControlEvent(int(self.clock()), address, converted, "web",
                                     reply_to=("web", reply_to) if reply_to is not None else None))
        return 202, {"ok": True}


def _shape_problem(message: Any) -> str | None:
    """Why a decoded message is not ``{"address": str, "args": [..]}``, or None."""
    if not isinstance(message, dict):
        return f"a message is a JSON object {{\"address\": ..., \"args\": [...]}}, got " \
               f"{type(message).__name__}"
    address = message.get("address")
    if not isinstance(address, str) or not address.startswith("/"):
        return "\"address\" must be a string starting with '/', like \"/phosphene/param/psi\""
    args = message.get("args", [])
    if not isinstance(args, list):
        return "\"args\" must be a list, like [0.5]"
    if any(not isinstance(a, (int, float, str)) or a is None for a in args):
        return "\"args\" may hold numbers and strings only"
    unknown = set(message) - {"address", "args"}
    if unknown:
        return f"unknown keys {sorted(unknown)}; a message has \"address\" and \"args\""
    return None
