"""The web control page: its server against real HTTP and WebSocket clients (the token, origin
and host checks, bad JSON, oversized messages, the rate limit, the OSC errors), the layouts
``phosphene osc --layout`` writes, and a real headless Chromium driving the page against a
running headless engine."""

from __future__ import annotations

import http.client
import json
import queue
import time

import py2tosc
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from headless_chromium import HeadlessChromium
from live_engine_helpers import EngineRun, tiny_generator, write_clicks, write_presets
from phosphene.cli import main as cli_main
from phosphene.live.control.layout_open_stage_control import open_stage_control_session
from phosphene.live.control.routes import NamespaceContext, Rejected, validate
from phosphene.live.control.surface import build_surface
from phosphene.live.control.web_guard import (MAX_MESSAGE_BYTES, ClientRateLimit, WebStats,
                                              origin_refusal)
from phosphene.live.control.web_messages import WebIntake
from phosphene.live.control.web_server import WS_FRAME_LIMIT, WebControlServer
from phosphene.live.runtime.actions import namespace_context
from phosphene.live.runtime.engine import EngineOptions
from phosphene.live.show.presets import load_preset

TIMEOUT_S = 20.0
STATUS = {"fps": 59.5, "generator_fps": 21.0, "tempo_bpm": 128.0, "preset": "default",
          "errors": 0}


@pytest.fixture()
def context() -> NamespaceContext:
    preset, _ = load_preset("default")
    return namespace_context(preset)


class FakeView:
    """What the server reads from an engine, without one."""

    def __init__(self, context: NamespaceContext):
        self._context = context

    def context(self) -> NamespaceContext:
        return self._context

    def status(self) -> dict:
        return dict(STATUS)

    def surface(self):
        return build_surface(self._context, preset="default", keyframes=["seed 1", "seed 2"])

    def preview_jpeg(self) -> None:
        return None


class Page:
    """A started server with its event queue and what it announced."""

    def __init__(self, context: NamespaceContext, host: str = "127.0.0.1",
                 limit: ClientRateLimit | None = None):
        self.events: queue.Queue = queue.Queue()
        self.announced: list[str] = []
        intake = WebIntake(self.events, lambda: 4800, lambda: context, lambda: dict(STATUS),
                           WebStats(), limit)
        self.server = WebControlServer(host, 0, view=FakeView(context), intake=intake,
                                       announce=self.announced.append)

    def __enter__(self) -> "Page":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    @property
    def port(self) -> int:
        return self.server.address[1]

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict | None = None, chunked: bool = False):
        """(status, headers, decoded JSON or raw bytes) of one real HTTP request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        headers = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if chunked:
            conn.putrequest(method, path, skip_host="Host" in headers)
            for k, v in {**headers, "Transfer-Encoding": "chunked"}.items():
                conn.putheader(k, v)
            conn.endheaders()
            for start in range(0, len(body), 1024):
                piece = body[start:start + 1024]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if response.getheader("content-type", "").startswith("application/json"):
            data = json.loads(data)
        return response.status, response, data

    def post(self, message, **kwargs):
        body = message if isinstance(message, (bytes, str)) else json.dumps(message)
        return self.request("POST", kwargs.pop("path", "/osc"), body,
                            {"Content-Type": "application/json", **kwargs.pop("headers", {})},
                            **kwargs)

    def socket(self, query: str = "", **kwargs):
        return connect(f"ws://127.0.0.1:{self.port}/ws{query}", open_timeout=TIMEOUT_S,
                       **kwargs)

    def drain(self) -> list:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out


def receive_until(ws, predicate):
    """The first message the page gets for which ``predicate`` holds (status pushes come
    in between)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=TIMEOUT_S))
        if predicate(message):
            return message
    raise AssertionError("the page never got the message it waited for")


def rejection(address, args, context) -> str:
    with pytest.raises(Rejected) as caught:
        validate(address, args, context)
    return str(caught.value)


# -- the server, over HTTP -------------------------------------------------------------------------

def test_loopback_page_serves_the_page_status_and_surface_without_a_token(context):
    with Page(context) as page:
        status, response, html = page.request("GET", "/")
        assert status == 200 and b"<title>phosphene" in html
        assert page.request("GET", "/static/app.js")[0] == 200
        assert page.request("GET", "/static/style.css")[0] == 200
        assert page.request("GET", "/status")[2] == STATUS
        surface = page.request("GET", "/surface")[2]
        psi = next(f for f in surface["parameters"] if f["name"] == "psi")
        assert (psi["address"], psi["minimum"], psi["maximum"]) == ("/phosphene/param/psi", 0, 2)
        assert page.request("GET", "/preview.jpg")[0] == 204       # no frame yet
        assert page.request("GET", "/static/../web_server.py")[0] == 404
        assert page.server.token is None
    assert page.announced == [f"phosphene: control page at http://127.0.0.1:{page.port}/"]


def test_post_osc_goes_through_the_osc_validation_onto_the_event_queue(context):
    with Page(context) as page:
        assert page.post({"address": "/phosphene/param/psi", "args": [0.5]})[:3:2] == \
            (202, {"ok": True})
        assert page.post({"address": "/phosphene/keyframe/next"})[0] == 202
        events = page.drain()
        assert [(e.sample_index, e.address, e.args, e.origin) for e in events] == [
            (4800, "/phosphene/param/psi", (0.5,), "web"),
            (4800, "/phosphene/keyframe/next", (), "web")]
        assert all(e.reply_to is None for e in events)      # a POST has no socket to answer
        # the status request is answered at once, as over OSC
        assert page.post({"address": "/phosphene/status", "args": []})[2] == STATUS
        # the OSC server's errors, word for word, with an HTTP status
        cases = [("/phosphene/nope", [1.0], 404), ("/phosphene/param/psi", [9.0], 400),
                 ("/phosphene/param/nope", [0.5], 400), ("/phosphene/param/psi", [], 400),
                 ("/phosphene/clip/play", ["../etc/passwd"], 400),
                 ("/phosphene/param/psi", ["x"], 400)]
        for address, args, code in cases:
            status, _, answer = page.post({"address": address, "args": args})
            assert (status, answer) == (code, {"error": rejection(address, args, context),
                                               "address": address})
        # a message shaped like a reply is refused, never acted on
        status, _, answer = page.post({"address": "/phosphene/error", "args": ["/x", "why"]})
        assert status == 400 and "reply" in answer["error"]
        assert page.drain() == []
        stats = page.server.snapshot()
        assert stats["accepted"]["/phosphene/param/psi"] == 1
        assert stats["rejected"] == {"invalid": len(cases), "reply": 1}


def test_bad_json_and_oversized_messages_are_refused_and_counted(context):
    with Page(context) as page:
        for body in ("{not json", "[1, 2]", '{"address": 5}', '{"address": "/phosphene/panic", '
                     '"args": 1}', '{"address": "/phosphene/panic", "extra": 1}'):
            status, _, answer = page.post(body)
            assert status == 400 and answer["error"], body
        big = json.dumps({"address": "/phosphene/preset/load", "args": ["x" * MAX_MESSAGE_BYTES]})
        assert page.post(big)[0] == 413                            # Content-Length said so
        assert page.post(big, chunked=True)[0] == 413              # counted as it came
        assert page.drain() == []
        assert page.server.snapshot()["rejected"] == {"bad_json": 5, "too_large": 2}
        # the server is still there for good messages
        assert page.post({"address": "/phosphene/panic"})[0] == 202


def test_the_websocket_answers_errors_and_survives_bad_messages(context):
    with Page(context) as page:
        with page.socket() as ws:
            assert "status" in receive_until(ws, lambda m: "status" in m)
            ws.send("{broken")
            assert receive_until(ws, lambda m: "error" in m)["error"].startswith("not JSON")
            ws.send("x" * (MAX_MESSAGE_BYTES + 1))
            assert "at most" in receive_until(ws, lambda m: "error" in m)["error"]
            ws.send(json.dumps({"address": "/phosphene/param/psi", "args": [7.0]}))
            answer = receive_until(ws, lambda m: "error" in m)
            assert answer == {"error": rejection("/phosphene/param/psi", [7.0], context),
                              "address": "/phosphene/param/psi"}
            ws.send(json.dumps({"address": "/phosphene/param/psi", "args": [1.5]}))
            ws.send(json.dumps({"address": "/phosphene/status"}))
            assert receive_until(ws, lambda m: "status" in m)["status"] == STATUS
            events = page.drain()
            assert [(e.address, e.args, e.origin) for e in events] == [
                ("/phosphene/param/psi", (1.5,), "web")]
            # a failure found later (an action) is answered on the socket that sent it
            page.server.reply_error(events[0].reply_to, events[0].address, "it failed later")
            assert receive_until(ws, lambda m: "error" in m) == {
                "error": "it failed later", "address": "/phosphene/param/psi"}
        # a frame over the WebSocket layer's limit closes that socket only
        with page.socket() as ws:
            ws.send("x" * (WS_FRAME_LIMIT + 1))
            with pytest.raises(ConnectionClosed) as closed:
                receive_until(ws, lambda m: False)
            assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
        with page.socket() as ws:
            assert "status" in receive_until(ws, lambda m: "status" in m)
        stats = page.server.snapshot()
        assert stats["rejected"]["bad_json"] == 1 and stats["rejected"]["invalid"] == 1
        assert stats["rejected"]["too_large"] == 2
        assert stats["connections"] == 3 and stats["action_errors"] == 1


def test_a_client_over_the_rate_limit_is_refused_and_counted(context):
    with Page(context, limit=ClientRateLimit(per_s=0.0, burst=3)) as page:
        codes = [page.post({"address": "/phosphene/keyframe/next"})[0] for _ in range(5)]
        assert codes == [202, 202, 202, 429, 429]
        assert len(page.drain()) == 3
        assert page.server.snapshot()["rejected"] == {"rate_limited": 2}


def test_a_network_bind_requires_the_token_on_every_request_and_socket(context):
    with Page(context, host="0.0.0.0") as page:
        token = page.server.token
        assert token and len(token) >= 20
        banner = page.announced[0]
        assert f":{page.port}/?token={token}" in banner
        assert "█" in banner or "▀" in banner or "▄" in banner          # the QR code
        for path in ("/", "/status", "/surface", "/static/app.js", "/preview.jpg"):
            assert page.request("GET", path)[0] == 401, path
            assert page.request("GET", path + "?token=wrong")[0] == 401, path
        assert page.post({"address": "/phosphene/panic"})[0] == 401
        # the printed URL: the page, and a cookie that carries the token from then on
        status, response, _ = page.request("GET", f"/?token={token}")
        assert status == 200
        cookie = response.getheader("set-cookie")
        assert cookie.startswith(f"phosphene_token={token}") and "HttpOnly" in cookie \
            and "SameSite=strict" in cookie
        jar = {"Cookie": f"phosphene_token={token}"}
        assert page.request("GET", "/static/app.js", headers=jar)[0] == 200
        assert page.request("GET", "/status", headers={"Authorization": f"Bearer {token}"})[0] \
            == 200
        assert page.post({"address": "/phosphene/panic"}, headers=jar)[0] == 202
        with pytest.raises(InvalidStatus) as refused:
            page.socket()
        assert refused.value.response.status_code == 403
        with page.socket(f"?token={token}") as ws:
            assert "status" in receive_until(ws, lambda m: "status" in m)
        assert page.server.snapshot()["rejected"]["bad_token"] == 12
        assert page.server.snapshot()["token_required"] is True


def test_origins_and_hosts_are_checked(context):
    with Page(context) as page:
        own = f"http://127.0.0.1:{page.port}"
        message = {"address": "/phosphene/blackout", "args": [1]}
        for origin in ("http://evil.example", "null", f"http://127.0.0.1:{page.port + 1}",
                       f"https://127.0.0.1:{page.port}"):
            status, _, answer = page.post(message, headers={"Origin": origin})
            assert status == 403 and "Origin" in answer["error"], origin
        assert page.post(message, headers={"Origin": own})[0] == 202
        with pytest.raises(InvalidStatus):
            page.socket(origin="http://evil.example")
        with page.socket(origin=own) as ws:
            assert "status" in receive_until(ws, lambda m: "status" in m)
        # a name that resolves to this machine is not enough (DNS rebinding): loopback only
        status, _, answer = page.request("GET", "/status",
                                         headers={"Host": f"evil.example:{page.port}"})
        assert status == 403 and "loopback" in answer["error"]
        assert page.request("GET", "/status", headers={"Host": f"localhost:{page.port}"})[0] == 200
        assert len(page.drain()) == 1
        rejected = page.server.snapshot()["rejected"]
        assert rejected == {"bad_origin": 5, "bad_host": 1}


def test_origin_rules():
    assert origin_refusal(None, "127.0.0.1:8080") is None          # not a browser
    assert origin_refusal("http://127.0.0.1:8080", "127.0.0.1:8080") is None
    assert origin_refusal("http://LOCALHOST:8080", "localhost:8080") is None
    assert origin_refusal("http://127.0.0.1:8080", "127.0.0.1:8081")
    assert origin_refusal("file://", "127.0.0.1:8080")


@pytest.mark.parametrize("argv, web", [
    ([], None), (["--web"], ("127.0.0.1", 8080)), (["--web", "9001"], ("127.0.0.1", 9001)),
    (["--web", "0.0.0.0:8081"], ("0.0.0.0", 8081)), (["--web", "[::1]:8082"], ("::1", 8082))])
def test_live_web_flag(argv, web):
    from phosphene.cli import build_parser
    from phosphene.commands.live import options_from_args

    args = build_parser().parse_args(["live", *argv])
    assert options_from_args(args).web == web


def test_live_web_flag_refuses_a_bad_address(capsys):
    from phosphene.cli import build_parser

    for bad in ("70000", "::1:80", "host:port"):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["live", "--web", bad])
        assert exited.value.code == 2
    assert "--web" in capsys.readouterr().err


# -- layouts ----------------------------------------------------------------------------------

def _widgets(node):
    for child in node.get("widgets", []) + node.get("tabs", []):
        yield child
        yield from _widgets(child)


def test_open_stage_control_session_sends_only_what_the_namespace_accepts(tmp_path, context):
    out = tmp_path / "phosphene.json"
    assert cli_main(["osc", "--layout", "open-stage-control", "-o", str(out)]) == 0
    session = json.loads(out.read_text())
    assert session["type"] == "session" and session["content"]["type"] == "root"
    widgets = list(_widgets(session["content"]))
    ids = [w["id"] for w in widgets]
    assert len(ids) == len(set(ids)), "widget ids must be unique"
    sent = []
    for w in widgets:
        if w["type"] == "fader":
            sent += [(w["address"], [w["range"]["min"]]), (w["address"], [w["range"]["max"]])]
        elif w["type"] == "button":
            mode = w.get("mode")
            sent.append((w["address"], [] if mode == "momentary" else
                         [w["on"]] if mode == "tap" else [w["on"]]))
        elif w["type"] == "xy":
            for axis, target in (("rangeX", 0), ("rangeY", 1)):
                address = json.loads(w["onValue"].split(";")[target].split("(", 1)[1]
                                     .split(",")[0])
                sent.append((address, [w[axis]["max"]]))
    addresses = {a for a, _ in sent}
    for must in ("/phosphene/param/psi", "/phosphene/keyframe/next", "/phosphene/keyframe/capture",
                 "/phosphene/keyframe/goto", "/phosphene/preset/load", "/phosphene/panic",
                 "/phosphene/mode/drift"):
        assert must in addresses, must
    for address, args in sent:
        validate(address, args, context)                     # raises if the session is wrong


def test_touchosc_layout_loads_and_validates(tmp_path, context):
    out = tmp_path / "phosphene.tosc"
    assert cli_main(["osc", "--layout", "touchosc", "-o", str(out)]) == 0
    document = py2tosc.load(str(out))
    assert py2tosc.validate(document) == []
    faders = {f.name for f in document.find_all(type="FADER")}
    assert {"psi", "noise", "mode.drift"} <= faders
    assert document.find_all(type="XY")
    # without -o there is nowhere to put a binary file
    assert cli_main(["osc", "--layout", "touchosc"]) == 2


def test_surface_follows_the_namespace(context):
    surface = build_surface(context, keyframes=["a", "b"], presets=["p"], clips=["c"])
    buttons = {b.address for b in surface.buttons}
    assert "/phosphene/status" not in buttons
    assert {"/phosphene/keyframe/next", "/phosphene/keyframe/capture", "/phosphene/blackout",
            "/phosphene/panic", "/phosphene/midi/cancel"} <= buttons
    assert [b.args for b in surface.keyframes] == [(0,), (1,)]
    tempo = next(f for f in surface.parameters if f.name == "tempo_bpm")
    assert tempo.address == "/phosphene/tempo/bpm"
    assert any(p.x.name == "psi" and p.y.name == "noise" for p in surface.pads)
    session = open_stage_control_session(surface)
    assert session["content"]["tabs"]


# -- the page in a real browser, against a running engine ---------------------------------------

GOTO_BUTTONS = "document.querySelectorAll('[data-address=\"/phosphene/keyframe/goto\"]')"


def test_chromium_moves_a_fader_and_presses_keyframe_buttons_on_a_running_engine(tmp_path):
    preset = write_presets(tmp_path / "presets")
    wav = write_clicks(tmp_path / "clicks.wav", [0.5, 1.0, 1.5, 2.0], 60.0)
    options = EngineOptions(preset=str(preset), audio_file=wav, output="none", headless=True,
                            osc_port=None, web=("127.0.0.1", 0))
    with EngineRun(options, generator=tiny_generator()) as run, HeadlessChromium() as browser:
        engine = run.engine
        browser.open(engine.web.url())
        browser.wait_for("document.body.dataset.surface === 'ready' && "
                         "document.body.dataset.link === 'open'", "the page to connect")
        assert engine.state.values["psi"] == pytest.approx(0.7)
        assert browser.evaluate(f"{GOTO_BUTTONS}.length") == 3

        browser.drag('input[data-param="psi"]', 0.35, 1.0)           # all the way up: 2.0
        browser.click('button[data-address="/phosphene/keyframe/next"]')
        browser.wait_for("document.body.dataset.keyframe === '1'", "the next keyframe")
        # keyframe capture: the engine adds one, and the page grows a button for it
        browser.click('button[data-address="/phosphene/keyframe/capture"]')
        browser.wait_for(f"{GOTO_BUTTONS}.length === 4",
                         "a button for the captured keyframe")
        # MIDI learn without MIDI: valid, refused by the engine later, answered on the page
        browser.click('button[data-learn="psi"]')
        error = browser.wait_for("(document.querySelector('#messages .error') || {}).textContent",
                                 "the MIDI learn error")
        assert "no MIDI input" in error
        browser.wait_for("Number(document.querySelector('input[data-param=\"psi\"]').value) > 1.99",
                         "the fader at the top")
        deadline = time.monotonic() + TIMEOUT_S
        while engine.state.values["psi"] < 1.99 and time.monotonic() < deadline:
            time.sleep(0.05)                                    # the smoothing's glide
        engine.stop()
        report = run.wait()
    assert report["final"]["parameters"]["psi"] == pytest.approx(2.0, abs=0.01)
    assert report["final"]["keyframe"] == 1
    web = report["web"]
    assert web["accepted"]["/phosphene/param/psi"] >= 1
    assert web["accepted"]["/phosphene/keyframe/next"] == 1
    assert web["accepted"]["/phosphene/keyframe/capture"] == 1
    assert web["action_errors"] == 1 and web["rejected"] == {}
    assert any(e["where"] == "/phosphene/midi/learn" for e in report["errors"])
    assert not [line for line in browser.console if line.startswith("exception")]
