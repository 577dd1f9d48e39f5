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

Nothing here can make two servers (or one and itself) talk for ever, nor cost much in a flood:

- a message shaped like a reply (``routes.is_reply``) is counted as ignored, never answered;
- nothing is ever sent to the server's own socket (a status request whose reply port is the
  server's own is refused);
- error replies to one peer (host, port) are rate-limited (``ERROR_REPLY_BURST`` at once, then
  ``ERROR_REPLIES_PER_S``); the rest are counted as suppressed, never built;
- the server reads what the kernel has queued into its own queue (``MAX_PENDING``), answers
  the status requests among it at once and judges the rest a few at a time, reading again
  between: a status request waits for at most ``READ_EVERY`` messages, even in a flood;
- what the kernel dropped because the receive queue was full is read from the kernel
  (``kernel_drops``) for the report, next to the receive buffer's effective size.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import queue
import selectors
import socket
import sys
import threading
import time
from collections import Counter, deque
from typing import Any, Callable

from pythonosc import osc_message
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer

from phosphene.live.show.events import ControlEvent
from phosphene.live.control.routes import NamespaceContext, Rejected, is_reply, validate
from phosphene.supervision import Supervisor
from phosphene.live.control.osc_wire import MalformedPacket, parse_packet

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"      # loopback: opening the show to a LAN must be explicit
DEFAULT_PORT = 9000
MALFORMED = "<malformed>"       # the "address" counted for packets that do not parse
# Room for a burst while the server is busy: Linux charges each queued datagram its buffer's
# full size (832 bytes for a small OSC message on x86_64) against twice the size asked, so this
# holds about 40,000 of them (the flood was 20,000). Linux caps the ask at
# net.core.rmem_max (212992 by default: about 500 messages), which is logged when it bites.
RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024
ERROR_REPLY_BURST = 20          # error replies one peer gets at once ...
ERROR_REPLIES_PER_S = 10.0      # ... and then per second; the rest are counted, not sent
MAX_PENDING = 16384             # datagrams read but not yet judged (about 4 MB at most)
READ_EVERY = 32                 # messages judged between two reads of the socket
POLL_S = 0.1                    # the server thread looks whether it should stop this often
_MAX_KEYS = 256                 # distinct addresses tracked; random junk cannot grow memory
_MAX_PEERS = 1024               # peers whose error replies are metered
_STATUS_PREFIX = b"/phosphene/status\x00"     # a status message (request or reply), unparsed


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
        self.ignored: Counter[str] = Counter()      # replies that came in (never answered)
        self.self_addressed = 0                     # replies not sent: they were for ourselves
        self.errors_suppressed = 0                  # error replies over a peer's rate limit
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

    def ignore(self, address: str, client: tuple[str, int]) -> None:
        """Count a reply that came in (``routes.is_reply``); logged once per address."""
        with self._lock:
            key = self._key(self.ignored, address)
            self.ignored[key] += 1
            first = self._first(("ignored", key))
        if first:
            log.info("OSC %s from %s:%d ignored: it is a reply, and replies are never answered "
                     "(further ones counted, not logged)", key, *client[:2])

    def refuse_self(self, client: tuple[str, int]) -> None:
        with self._lock:
            self.self_addressed += 1
            first = self._first(("self", ""))
        if first:
            log.warning("OSC reply to %s:%d not sent: that is this server's own socket "
                        "(further ones counted, not logged)", *client[:2])

    def suppress_error(self, client: tuple[str, int]) -> None:
        with self._lock:
            self.errors_suppressed += 1
            first = self._first(("suppressed", ""))
        if first:
            log.info("OSC error replies to %s:%d rate-limited (%d at once, then %g/s per peer); "
                     "further ones counted, not sent", *client[:2], ERROR_REPLY_BURST,
                     ERROR_REPLIES_PER_S)

    def _first(self, key: tuple[str, str]) -> bool:
        """Whether ``key`` is logged for the first time (call with the lock held)."""
        if key in self._logged or len(self._logged) >= 2 * _MAX_KEYS:
            return False
        self._logged.add(key)
        return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"accepted": dict(self.accepted), "rejected": dict(self.rejected),
                    "ignored": dict(self.ignored), "self_addressed": self.self_addressed,
                    "error_replies_suppressed": self.errors_suppressed}


class PeerRateLimit:
    """A token bucket per peer: ``burst`` at once, then ``per_s`` a second (thread-safe).
    Bounded: past ``max_peers`` peers the least recently metered is forgotten (it starts
    again with a full bucket, which costs at most ``burst`` replies)."""

    def __init__(self, per_s: float = ERROR_REPLIES_PER_S, burst: int = ERROR_REPLY_BURST,
                 clock: Callable[[], float] = time.monotonic, max_peers: int = _MAX_PEERS):
        self.per_s, self.burst, self.clock = per_s, float(burst), clock
        self.max_peers = max_peers
        self._lock = threading.Lock()
        self._peers: dict[tuple, tuple[float, float]] = {}      # peer -> (tokens, when)

    def allow(self, peer: tuple) -> bool:
        now = self.clock()
        with self._lock:
            tokens, then = self._peers.pop(peer, (self.burst, now))   # re-inserted: most recent
            tokens = min(self.burst, tokens + (now - then) * self.per_s)
            allowed = tokens >= 1.0
            self._peers[peer] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._peers) > self.max_peers:
                del self._peers[next(iter(self._peers))]
        return allowed


class OwnAddress:
    """Whether a (host, port) is this server's own socket: a reply sent there would come back
    to the server as a message from itself. Bound to one address, only that address reaches
    the socket; bound to all (0.0.0.0, ::), any address of this machine does."""

    def __init__(self, bound: tuple[str, int]):
        self.host, self.port = bound[0], bound[1]
        self._wildcard = _is_unspecified(self.host)
        self._local: dict[str, bool] = {}           # host -> is it this machine's (bounded)

    def __call__(self, target: tuple[str, int]) -> bool:
        host, port = target[0], target[1]
        if port != self.port:
            return False
        if host == self.host or _is_unspecified(host):
            return True
        if not self._wildcard:
            return False
        local = self._local.get(host)
        if local is None:
            local = _is_local_address(host)
            if len(self._local) < _MAX_PEERS:
                self._local[host] = local
        return local


def _is_unspecified(host: str) -> bool:
    try:
        return host == "" or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _is_local_address(host: str) -> bool:
    """Whether ``host`` is an address of this machine: loopback, or one a socket can bind."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))                   # only this machine's addresses bind
        return True
    except OSError:
        return False


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for ``sock`` since it was opened, mostly because its receive
    queue was full: the ``drops`` column of ``/proc/net/udp`` (or ``udp6``) on the socket's
    inode. Read when asked, so the server pays nothing per packet (``SO_RXQ_OVFL`` would mean
    ``recvmsg`` and ancillary data on every datagram, and says nothing until a datagram
    arrives after the drops). None where there is no such table (not Linux)."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    found = False
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            fields = line.split()
            # sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
            if len(fields) >= 13 and fields[9] == inode:
                return int(fields[12])
    return 0 if found else None


def size_receive_buffer(sock: socket.socket, asked: int) -> int:
    """Ask for ``asked`` bytes of receive buffer; the effective size (``getsockopt``). Linux
    doubles what it grants (room for its bookkeeping) and reports the doubled figure, after
    capping the ask at ``net.core.rmem_max``: a cap is logged, with the way to lift it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, asked)
    except OSError as exc:
        log.info("OSC receive buffer: asking for %d bytes failed: %s", asked, exc)
    effective = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    granted = effective // 2 if sys.platform.startswith("linux") else effective
    if granted < asked:
        log.info("OSC receive buffer: %d KiB granted of the %d KiB asked; the system caps it "
                 "(Linux: net.core.rmem_max; `sysctl -w net.core.rmem_max=%d` lifts it). A "
                 "burst bigger than it holds is dropped by the kernel and counted in the "
                 "report's osc.kernel_dropped", granted // 1024, asked // 1024, asked)
    return effective


class OscRouter(Dispatcher):
    """Routing: parse a packet, validate each message against the namespace, then queue it,
    answer it (status) or reject it. Replaces python-osc's handler lookup, and ignores bundle
    time tags: sleeping until a time tag would let any sender stall the server."""

    def __init__(self, events: "queue.Queue[ControlEvent]", clock: Callable[[], int],
                 context: Callable[[], NamespaceContext], status: Callable[[], dict] | None,
                 send: Callable[[bytes, tuple[str, int]], None], stats: OscStats,
                 is_own: Callable[[tuple[str, int]], bool] = lambda client: False):
        super().__init__()
        self.events, self.clock, self.context, self.status = events, clock, context, status
        self.send, self.stats, self.is_own = send, stats, is_own
        self.error_limit = PeerRateLimit()
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
        if is_reply(address, args):      # answering a reply is how two servers loop for ever
            self.stats.ignore(address, client)
            return
        try:
            route, converted = validate(address, args, self.context())
        except Rejected as exc:
            self.stats.reject(address, str(exc))
            self.reply_error(client, address, str(exc))
            return
        if route.pattern == "/phosphene/status":
            reply_to = (client[0], converted[0]) if converted else client
            if self.is_own(reply_to):
                reason = f"reply port {reply_to[1]} is this server's own: it never answers itself"
                self.stats.reject(address, reason)
                self.reply_error(client, address, reason)
                return
            self.stats.accept(address)
            self._reply_status(reply_to)
            return
        self.stats.accept(address)
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
            int(info.get("errors", 0)), int(info.get("input_overflows", 0)),
            float(info.get("audio_age_ms", 0.0))))

    def reply_error(self, client: tuple[str, int], address: str, reason: str) -> None:
        if self.is_own(client):
            self.stats.refuse_self(client)
            return
        if not self.error_limit.allow(tuple(client[:2])):
            self.stats.suppress_error(client)      # counted, never built: a flood stays cheap
            return
        self._send(client, build_message("/phosphene/error", address[:200], reason[:500]))

    def _send(self, client: tuple[str, int], data: bytes) -> None:
        if self.is_own(client):
            self.stats.refuse_self(client)
            return
        try:
            self.send(data, client)
        except OSError as exc:      # the sender went away: nothing to answer
            log.debug("OSC reply to %s failed: %s", client, exc)


class _UDPServer(BlockingOSCUDPServer):
    """python-osc's UDP server for its socket (bind, options, close); ``OscServer`` reads it
    with its own loop, which reads ahead of what it judges (``OscServer._serve``). python-osc's
    own check, which silently drops datagrams that do not look like OSC, is never used: junk is
    counted and answered like any other bad message."""

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)      # read until the queue is empty, never wait in it


class OscServer:
    """A UDP OSC server in its own thread. ``start()``/``stop()``; ``events`` is the queue."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 clock: Callable[[], int] = lambda: 0,
                 context: Callable[[], NamespaceContext] = NamespaceContext,
                 status: Callable[[], dict] | None = None,
                 events: "queue.Queue[ControlEvent] | None" = None,
                 receive_buffer_bytes: int = RECEIVE_BUFFER_BYTES):
        self.events: queue.Queue[ControlEvent] = events if events is not None else queue.Queue()
        self.stats = OscStats()
        self.router = OscRouter(self.events, clock, context, status, self._sendto, self.stats)
        # one thread for all packets: a burst must not spawn a thread per packet
        self._server = _UDPServer((host, port), self.router)
        self.router.is_own = OwnAddress(self.address)
        # room for a burst: the kernel queues packets while a message is being handled
        self.receive_buffer_bytes = size_receive_buffer(self._server.socket, receive_buffer_bytes)
        self._kernel_dropped: int | None = None      # the last count, kept when the socket closes
        # read, not yet judged; kept here, so a restarted server thread loses none of it
        self._pending: deque[tuple[bytes, tuple[str, int]]] = deque()
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

    def _serve(self) -> None:
        """The server thread: wait for the socket (waking every ``POLL_S`` to see whether the
        server is stopping), read what is queued (``_read``), and judge ``READ_EVERY``
        messages of it at a time, reading again between; a status request found while reading
        is answered at once, ahead of the flood it may have come behind."""
        sock, pending, router = self._server.socket, self._pending, self.router
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while not self._stopping:
                if pending or selector.select(POLL_S):
                    self._read(sock, pending)
                    for _ in range(min(READ_EVERY, len(pending))):
                        router.call_handlers_for_packet(*pending.popleft())
                self._server.service_actions()   # socketserver's hook, once a turn as there

    def _read(self, sock: socket.socket, pending: deque) -> None:
        """Move what the kernel has queued into ``pending`` (while it has room), answering
        status requests on the way. Reading costs a few microseconds a datagram, judging one
        tens: reading ahead finds a status request deep in a flood, and leaves the kernel's
        buffer free for the next burst."""
        room = MAX_PENDING - len(pending)
        while room > 0:
            try:
                data, client = sock.recvfrom(self._server.max_packet_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:    # an error reported on the socket (Windows: an ICMP reset)
                return
            room -= 1
            if data.startswith(_STATUS_PREFIX):     # a request, or a reply to be ignored
                self.router.call_handlers_for_packet(data, client)
            else:
                pending.append((data, client))

    def start(self) -> "OscServer":
        supervisor = self.supervisor or Supervisor()
        self._thread = supervisor.thread(
            "osc", self._serve,
            should_stop=lambda: self._stopping)
        self._thread.start()
        log.info("OSC listening on %s:%d", *self.address)
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.kernel_dropped()                        # the final count, before the socket goes
        self._server.server_close()

    def kernel_dropped(self) -> int | None:
        """Datagrams the kernel dropped before the server could read them (a full receive
        queue); None where the system does not say (``kernel_drops``)."""
        if self._server.socket.fileno() >= 0:
            self._kernel_dropped = kernel_drops(self._server.socket)
        return self._kernel_dropped

    def snapshot(self) -> dict[str, Any]:
        """For the run report: the counts (``OscStats``), what the kernel dropped, the
        receive buffer's effective size and the address."""
        return {**self.stats.snapshot(), "kernel_dropped": self.kernel_dropped(),
                "receive_buffer_bytes": self.receive_buffer_bytes,
                "address": f"{self.address[0]}:{self.address[1]}"}

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
