"""The OSC server: UDP transport (python-osc) apart from routing (``OscRouter``) apart from the
messages (``osc_namespace``).

Accepted messages become ``ControlEvent``s on a thread-safe queue that the engine drains,
stamped with the audio sample index from a ``clock`` callable. ``/phosphene/status`` is
answered directly from the server thread with what the engine's ``status`` callable returns.
A bad packet or message is counted per address, logged once per address (a packet that is not
valid OSC: once per kind of problem), answered on ``/phosphene/error`` to the sender, and never
raised: the show goes on. Each queued event carries its sender (``reply_to``), so a failure
found later, on the analysis thread, is answered the same way (``reply_error``). Packets are
parsed by ``osc_wire``, never by python-osc's own dispatch, whose parser logs a line per broken
packet.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections import Counter
from typing import Any, Callable

from pythonosc import osc_message
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer

from phosphene.live.show.events import ControlEvent
from phosphene.live.control.routes import NamespaceContext, Rejected, validate
from phosphene.supervision import Supervisor
from phosphene.live.control.osc_wire import MalformedPacket, parse_packet

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"      # loopback: opening the show to a LAN must be explicit
DEFAULT_PORT = 9000
MALFORMED = "<malformed>"       # the "address" counted for packets that do not parse
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
_MAX_KEYS = 256                 # distinct addresses tracked; random junk cannot grow memory


def build_message(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, bool):
            builder.add_arg(a, OscMessageBuilder.ARG_TYPE_TRUE if a else OscMessageBuilder.ARG_TYPE_FALSE)
        elif isinstance(a, int):
            builder.add_arg(a, OscMessageBuilder.ARG_TYPE_INT)
        elif isinstance(a, float):
            builder.add_arg(a, OscMessageBuilder.ARG_TYPE_FLOAT)
        else:
            builder.add_arg(str(a), OscMessageBuilder.ARG_TYPE_STRING)
    return builder.build().dgram


def parse_message(data: bytes) -> tuple[str, list[Any]]:
    msg = osc_message.OscMessage(data)
    return msg.address, list(msg.params)


class OscStats:
    """Accepted/rejected counts per address (thread-safe, bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()

    def _key(self, counter: Counter, address: str) -> str:
        return address if address in counter or len(counter) < _MAX_KEYS else "<other>"

    def accept(self, address: str) -> None:
        with self._lock:
            self.accepted[self._key(self.accepted, address)] += 1

    def reject(self, address: str, reason: str, kind: str = "") -> None:
        """Count a rejection under ``address``; log it the first time for this address and
        ``kind`` (the kind of problem, for packets that have no address to go by)."""
        with self._lock:
            key = self._key(self.rejected, address)
            self.rejected[key] += 1
            first = (key, kind) not in self._logged
            if first and len(self._logged) < 2 * _MAX_KEYS:
                self._logged.add((key, kind))
        if first:   # once per address: a flood of junk must not flood the log
            log.warning("OSC %s rejected: %s (further rejections counted, not logged)", key, reason)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"accepted": dict(self.accepted), "rejected": dict(self.rejected)}


class OscRouter(Dispatcher):
    """Routing: parse a packet, validate each message against the namespace, then queue it,
    answer it (status) or reject it. Replaces python-osc's handler lookup, and ignores bundle
    time tags: sleeping until a time tag would let any sender stall the server."""

    def __init__(self, events: "queue.Queue[ControlEvent]", clock: Callable[[], int],
                 context: Callable[[], NamespaceContext], status: Callable[[], dict] | None,
                 send: Callable[[bytes, tuple[str, int]], None], stats: OscStats):
        super().__init__()
        self.events, self.clock, self.context, self.status = events, clock, context, status
        self.send, self.stats = send, stats
        self._failed: set[str] = set()          # addresses whose handler raised (logged once)

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
        try:
            messages = parse_packet(data)
        except MalformedPacket as exc:
            self._malformed(client_address, exc.kind, exc.detail)
            return []
        except Exception as exc:   # noqa: BLE001 - anything off the wire may be broken
            self._malformed(client_address, "unparsable", f"{type(exc).__name__}: {exc}")
            return []
        if not messages:
            self._malformed(client_address, "empty bundle", "bundle holds no message")
            return []
        for message in messages:
            try:
                self._handle(message.address, list(message.params), client_address)
            except Exception as exc:  # noqa: BLE001 - never let one message kill the server
                if message.address not in self._failed and len(self._failed) < _MAX_KEYS:
                    self._failed.add(message.address)      # a traceback once, then counted
                    log.exception("OSC handler failed for %s", message.address)
                self.stats.reject(message.address, f"internal error: {exc}", kind="internal")
        return []

    def _malformed(self, client: tuple[str, int], kind: str, detail: str) -> None:
        self.stats.reject(MALFORMED, f"{kind} from {client[0]}: {detail}", kind=kind)
        self.reply_error(client, MALFORMED, f"packet is not valid OSC ({kind}: {detail})")

    def _handle(self, address: str, args: list[Any], client: tuple[str, int]) -> None:
        try:
            route, converted = validate(address, args, self.context())
        except Rejected as exc:
            self.stats.reject(address, str(exc))
            self.reply_error(client, address, str(exc))
            return
        self.stats.accept(address)
        if route.pattern == "/phosphene/status":
            reply_to = (client[0], converted[0]) if converted else client
            self._reply_status(reply_to)
            return
        # the sender goes with the event: an action that fails later (an unknown preset or
        # clip) is answered on /phosphene/error too (``OscServer.reply_error``)
        self.events.put(ControlEvent(int(self.clock()), address, converted, "osc",
                                     reply_to=client))

    def _reply_status(self, client: tuple[str, int]) -> None:
        info = self.status() if self.status else {}
        self._send(client, build_message(
            "/phosphene/status", float(info.get("fps", 0.0)), float(info.get("frame_ms", 0.0)),
            float(info.get("generator_fps", 0.0)), float(info.get("tempo_bpm", 0.0)),
            str(info.get("preset", "")), int(info.get("thread_restarts", 0)),
            int(info.get("errors", 0))))

    def reply_error(self, client: tuple[str, int], address: str, reason: str) -> None:
        self._send(client, build_message("/phosphene/error", address[:200], reason[:500]))

    def _send(self, client: tuple[str, int], data: bytes) -> None:
        try:
            self.send(data, client)
        except OSError as exc:      # the sender went away: nothing to answer
            log.debug("OSC reply to %s failed: %s", client, exc)


class _UDPServer(BlockingOSCUDPServer):
    # python-osc silently drops datagrams that do not look like OSC; we want every one routed,
    # so junk is counted and answered like any other bad message.
    def verify_request(self, request, client_address) -> bool:
        return True


class OscServer:
    """A UDP OSC server in its own thread. ``start()``/``stop()``; ``events`` is the queue."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 clock: Callable[[], int] = lambda: 0,
                 context: Callable[[], NamespaceContext] = NamespaceContext,
                 status: Callable[[], dict] | None = None,
                 events: "queue.Queue[ControlEvent] | None" = None):
        self.events: queue.Queue[ControlEvent] = events if events is not None else queue.Queue()
        self.stats = OscStats()
        self.router = OscRouter(self.events, clock, context, status, self._sendto, self.stats)
        # one thread for all packets: a burst must not spawn a thread per packet
        self._server = _UDPServer((host, port), self.router)
        try:   # room for a burst: the kernel queues packets while a message is being handled
            self._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        except OSError:
            pass
        self._thread: threading.Thread | None = None
        self.supervisor: Supervisor | None = None     # the engine's, or one of its own
        self._stopping = False

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def reply_error(self, client: tuple[str, int], address: str, reason: str) -> None:
        """Answer ``client`` on ``/phosphene/error`` (any thread): a message it sent was valid
        but what it asked for failed later (``ControlEvent.reply_to``)."""
        self.router.reply_error(client, address, reason)

    def _sendto(self, data: bytes, client: tuple[str, int]) -> None:
        # replies leave from the server's own socket, so they come from the port clients know
        self._server.socket.sendto(data, client)

    def start(self) -> "OscServer":
        supervisor = self.supervisor or Supervisor()
        self._thread = supervisor.thread(
            "osc", lambda: self._server.serve_forever(poll_interval=0.1),
            should_stop=lambda: self._stopping)
        self._thread.start()
        log.info("OSC listening on %s:%d", *self.address)
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def drain(self) -> list[ControlEvent]:
        """Everything received since the last drain (the engine calls this once per hop)."""
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def __enter__(self) -> "OscServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
