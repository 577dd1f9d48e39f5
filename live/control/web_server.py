"""The web control page's server: Starlette on uvicorn, in a supervised thread of its own with
its own asyncio loop.

Routes (every one behind ``Guard``: host, origin and token, ``web_guard.py`` has the rules):

- ``GET /`` the page, ``GET /static/...`` its script and style (``web_static/``);
- ``GET /surface`` the controls of the running preset (``surface.py``) as JSON;
- ``GET /status`` the status as JSON (the OSC status reply's figures, and the meters');
- ``GET /preview.jpg`` the generator's newest frame, small (before the effects);
- ``POST /osc`` one message ``{"address": ..., "args": [...]}``; ``WS /ws`` the same messages,
  with the status pushed ``STATUS_PER_S`` times a second and errors answered on the socket.

Messages are judged by ``WebIntake`` (the OSC server's validation, onto the engine's event
queue). Nothing a client sends can raise into the show: a handler's exception is logged once
and answered with a 500, a thread that dies is restarted by the supervisor with the same
listening socket, and what was refused is counted for the report (``snapshot``).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import itertools
import json
import logging
import socket
import sys
import threading
from collections import deque
from typing import Any, Callable
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from phosphene.live.control.web_guard import (MAX_MESSAGE_BYTES, TOKEN_COOKIE, WebStats, bearer,
                                              host_refusal, is_loopback, new_token,
                                              origin_refusal, token_matches)
from phosphene.live.control.web_engine import EngineView
from phosphene.live.control.web_messages import WebIntake
from phosphene.supervision import Supervisor

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
STATUS_PER_S = 4.0               # status pushes to each page
WS_FRAME_LIMIT = 64 * 1024       # the WebSocket layer closes a connection sending more at once
MAX_CONNECTIONS = 64             # requests and sockets at once; more get 503
PENDING_ERRORS = 32              # errors found later, waiting for a page's next push
STATIC = importlib.resources.files("phosphene.live.control") / "web_static"


class Guard:
    """ASGI middleware: every request and WebSocket passes the host, origin and token checks
    before the app sees it; a refusal is counted and answered (401/403; a WebSocket handshake
    is refused with 403)."""

    def __init__(self, app: Any, token: str | None, bound_loopback: bool, stats: WebStats):
        self.app, self.token, self.bound_loopback, self.stats = app, token, bound_loopback, stats

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        reason, status, why = refusal
        self.stats.reject(reason)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
            return
        await JSONResponse({"error": why}, status_code=status)(scope, receive, send)

    def refusal(self, scope: dict, headers: dict[str, str]) -> tuple[str, int, str] | None:
        host = headers.get("host")
        why = host_refusal(host, self.bound_loopback)
        if why:
            return "bad_host", 403, why
        origin = headers.get("origin")
        # a browser's GET of the page or an image may carry no Origin; its WebSocket and
        # POSTs always do, and those are what change the show
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        why = origin_refusal(origin, host, scheme)
        if why:
            return "bad_origin", 403, why
        if not token_matches(self.token, _given_token(scope, headers)):
            return "bad_token", 401, ("this control page needs its token: open the URL "
                                      "phosphene printed at start (…/?token=...)")
        return None


def _given_token(scope: dict, headers: dict[str, str]) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    given = bearer(headers.get("authorization"))
    if given:
        return given
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE:
            return value
    return None


class WebControlServer:
    """The page for one engine. ``start()`` binds (an ``OSError`` if it cannot) and serves on
    its own thread; ``stop()`` ends it. ``view`` is the engine's ``web_engine.EngineView``."""

    def __init__(self, host: str, port: int, *, view: Any, intake: WebIntake,
                 token: str | None = None, announce: Callable[[str], None] | None = None):
        self.host, self.port = host, port
        self.view, self.intake = view, intake
        self.stats = intake.stats
        self.bound_loopback = is_loopback(host)
        # loopback: this machine only, no token; anything else: a token, made here if not given
        self.token = token if token is not None or self.bound_loopback else new_token()
        self.announce = announce or (lambda text: print(text, file=sys.stderr, flush=True))
        self.supervisor: Supervisor | None = None     # the engine's, or one of its own
        self._sock: socket.socket | None = None
        self._bound: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._stopping = False
        self._ids = itertools.count(1)
        self._pending: dict[int, deque] = {}          # connection -> errors to send it
        self._logged: set[str] = set()
        self.app = Guard(self._starlette(), self.token, self.bound_loopback, self.stats)

    # -- the app ------------------------------------------------------------------------------
    def _starlette(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self._safe(self._index)),
            Route("/surface", self._safe(self._surface)),
            Route("/status", self._safe(self._status)),
            Route("/preview.jpg", self._safe(self._preview)),
            Route("/osc", self._safe(self._osc), methods=["POST"]),
            WebSocketRoute("/ws", self._socket),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ])

    def _safe(self, endpoint: Callable) -> Callable:
        """``endpoint``, answering 500 instead of raising (logged once per path and kind)."""
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Exception as exc:  # noqa: BLE001 - nothing a page asks may reach the show
                self._log_once(f"{request.url.path}: {type(exc).__name__}", exc)
                self.stats.reject("internal")
                return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"},
                                    status_code=500)
        return guarded

    def _log_once(self, key: str, exc: Exception) -> None:
        if key not in self._logged and len(self._logged) < 64:
            self._logged.add(key)
            log.error("web control: %s failed (further ones counted, not logged)", key,
                      exc_info=exc)

    async def _index(self, request: Request) -> Response:
        response = FileResponse(str(STATIC / "index.html"), media_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        if self.token is not None and request.query_params.get("token"):
            # the page's scripts, images and socket then carry the token without the page
            # passing it around; never readable by scripts, never sent by another site
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response

    async def _surface(self, request: Request) -> Response:
        return JSONResponse(self.view.surface().to_json())

    async def _status(self, request: Request) -> Response:
        return JSONResponse(self.view.status())

    async def _preview(self, request: Request) -> Response:
        # JPEG encoding of a small frame: a few ms, off the loop so sockets stay served
        jpeg = await asyncio.to_thread(self.view.preview_jpeg)
        if jpeg is None:
            return Response(status_code=204)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _osc(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_MESSAGE_BYTES:
            self.stats.reject("too_large")
            return JSONResponse({"error": f"message of {declared} bytes; at most "
                                 f"{MAX_MESSAGE_BYTES}"}, status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_MESSAGE_BYTES:       # no Content-Length: counted as it comes
                self.stats.reject("too_large")
                return JSONResponse({"error": f"message over {MAX_MESSAGE_BYTES} bytes"},
                                    status_code=413)
        client = request.client.host if request.client else "?"
        code, answer = self.intake.handle_bytes(bytes(body), f"http:{client}")
        return JSONResponse(answer, status_code=code)

    async def _socket(self, ws: WebSocket) -> None:
        await ws.accept()
        self.stats.connected()
        conn = next(self._ids)
        pending: deque = deque(maxlen=PENDING_ERRORS)
        self._pending[conn] = pending
        pusher = asyncio.create_task(self._push(ws, pending))
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    if message.get("code") == 1009:    # over WS_FRAME_LIMIT: closed for it
                        self.stats.reject("too_large")
                    return
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                code, answer = self.intake.handle_bytes(data, conn, answerable=True)
                if code >= 400:
                    await ws.send_text(json.dumps(answer))
                elif code == 200:                       # a status request: its answer
                    await ws.send_text(json.dumps({"status": answer}))
        except WebSocketDisconnect:
            return
        except Exception as exc:  # noqa: BLE001 - one page's trouble ends its socket only
            self._log_once("/ws", exc)
            self.stats.reject("internal")
        finally:
            pusher.cancel()
            self._pending.pop(conn, None)

    async def _push(self, ws: WebSocket, pending: deque) -> None:
        """The page's meters: the status ``STATUS_PER_S`` times a second, and the errors found
        since (``reply_error``)."""
        try:
            while True:
                while pending:
                    await ws.send_text(json.dumps(pending.popleft()))
                await ws.send_text(json.dumps({"status": self.view.status()}))
                await asyncio.sleep(1.0 / STATUS_PER_S)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return                                  # the page went away
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a status that cannot be read ends the push
            self._log_once("status push", exc)

    def reply_error(self, reply_to: Any, address: str, reason: str) -> None:
        """A message from a page was valid but failed later (an unknown clip): the page gets
        ``{"error", "address"}`` with its next push (any thread; best effort: a page that has
        gone gets nothing)."""
        self.stats.failed_later()
        conn = reply_to[1] if isinstance(reply_to, tuple) and len(reply_to) == 2 else None
        pending = self._pending.get(conn)
        if pending is not None:
            pending.append({"error": reason[:500], "address": address[:200]})

    # -- the thread ---------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        return self._bound or (self.host, self.port)

    def url(self, with_token: bool = True) -> str:
        host, port = self.address
        if host in ("0.0.0.0", "::", ""):
            host = _lan_address()
        shown = f"[{host}]" if ":" in host else host
        query = f"?token={self.token}" if with_token and self.token else ""
        return f"http://{shown}:{port}/{query}"

    def start(self) -> "WebControlServer":
        self._sock = _listen(self.host, self.port)
        self._bound = self._sock.getsockname()[:2]      # kept: the report reads it after stop
        supervisor = self.supervisor or Supervisor()
        self._thread = supervisor.thread("web", self._serve, should_stop=lambda: self._stopping)
        self._thread.start()
        self.announce(self.banner())
        return self

    def _serve(self) -> None:
        """One uvicorn server on a copy of the listening socket (the server closes what it is
        given; the original stays open for a restart)."""
        config = uvicorn.Config(self.app, log_config=None, log_level="warning",
                                access_log=False, proxy_headers=False, server_header=False,
                                ws_max_size=WS_FRAME_LIMIT, limit_concurrency=MAX_CONNECTIONS,
                                timeout_graceful_shutdown=2, lifespan="off")
        self._server = uvicorn.Server(config)
        if self._stopping:
            return
        self._server.run(sockets=[self._sock.dup()])

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._sock is not None:
            self._sock.close()

    def banner(self) -> str:
        """What the performer is told at start: the URL, and where a token is needed, the URL
        with it as a QR code to scan with a phone."""
        lines = [f"phosphene: control page at {self.url()}"]
        if self.token is not None:
            lines.append("phosphene: the page needs its token (in the URL above); scan this "
                         "with the phone:")
            lines.append(qr_text(self.url()))
        return "\n".join(lines)

    def snapshot(self) -> dict[str, Any]:
        """For the run report: what was accepted and refused, and where the page was."""
        host, port = self.address
        return {**self.stats.snapshot(), "address": f"{host}:{port}",
                "token_required": self.token is not None}


def qr_text(text: str) -> str:
    """``text`` as a QR code drawn with block characters, for a terminal."""
    import io

    import qrcode    # only where a token is printed

    code = qrcode.QRCode(border=1)
    code.add_data(text)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue().rstrip("\n")


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def _lan_address() -> str:
    """This machine's address on its default route (what a phone on the LAN reaches it by);
    no packet is sent. Loopback where there is no route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))         # TEST-NET-1: never routed anywhere
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def serve_engine(engine: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 token: str | None = None) -> WebControlServer:
    """Start the page for a running ``engine`` (``phosphene live --web``): messages onto its
    event queue stamped with its clock, validated against its actions' namespace context,
    the thread under its supervisor. An ``OSError`` when the address cannot be bound."""
    view = EngineView(engine)
    intake = WebIntake(engine.events, lambda: engine.clock, view.context, view.status,
                       WebStats())
    server = WebControlServer(host, port, view=view, intake=intake, token=token)
    server.supervisor = engine.supervisor
    return server.start()
