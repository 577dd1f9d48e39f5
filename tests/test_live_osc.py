"""The OSC server against independent clients: liblo's oscsend/oscdump and raw UDP sockets."""

from __future__ import annotations

import logging
import random
import socket
import struct
import subprocess
import time

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage

from phosphene.cli import main as cli_main
from phosphene.live.control.osc_server import MALFORMED, OscServer, build_message, parse_message
from phosphene.live.control.routes import NAMESPACE, NamespaceContext
from phosphene.live.show.presets import load_preset

TIMEOUT_S = 10.0


@pytest.fixture()
def context() -> NamespaceContext:
    preset, _ = load_preset("default")
    specs = preset.parameter_specs()
    return NamespaceContext(parameters=specs, effects=frozenset(preset.effect_names()))


@pytest.fixture()
def server(context):
    status = {"fps": 59.5, "frame_ms": 16.8, "generator_fps": 21.0, "tempo_bpm": 128.0,
              "preset": "default", "input_overflows": 3, "audio_age_ms": 7.25}
    srv = OscServer("127.0.0.1", 0, clock=lambda: 4800, context=lambda: context,
                    status=lambda: status).start()
    yield srv
    srv.stop()


def oscsend(port: int, address: str, types: str = "", *values) -> None:
    subprocess.run(["oscsend", "localhost", str(port), address, types, *map(str, values)],
                   check=True, timeout=TIMEOUT_S)


def wait_for(predicate, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def client_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(TIMEOUT_S)
    return s


def test_oscsend_messages_become_stamped_control_events(server):
    port = server.address[1]
    oscsend(port, "/phosphene/param/psi", "f", 1.25)
    oscsend(port, "/phosphene/effect/flash/amount", "f", 0.5)
    oscsend(port, "/phosphene/keyframe/goto", "i", 3)
    oscsend(port, "/phosphene/clip/play", "sf", "choir", 0.8)
    oscsend(port, "/phosphene/mode/drift", "i", 1)          # an int for a float: accepted
    events = []
    wait_for(lambda: events.extend(server.drain()) or len(events) >= 5, "5 events")
    got = [(e.address, e.args, e.sample_index) for e in events]
    assert got == [("/phosphene/param/psi", (1.25,), 4800),
                   ("/phosphene/effect/flash/amount", (0.5,), 4800),
                   ("/phosphene/keyframe/goto", (3,), 4800),
                   ("/phosphene/clip/play", ("choir", pytest.approx(0.8)), 4800),
                   ("/phosphene/mode/drift", (1.0,), 4800)]
    assert server.stats.snapshot()["accepted"]["/phosphene/param/psi"] == 1


def test_status_is_answered_to_oscdump(server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:   # a free port for oscdump
        probe.bind(("127.0.0.1", 0))
        dump_port = probe.getsockname()[1]
    dump = subprocess.Popen(["oscdump", "-L", str(dump_port)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)       # let oscdump bind before the reply is sent
        oscsend(server.address[1], "/phosphene/status", "i", dump_port)
        line = wait_for(lambda: dump.stdout.readline(), "oscdump output")
    finally:
        dump.terminate()
        dump.wait(timeout=TIMEOUT_S)
    words = line.split()        # oscdump: <timetag> <address> <types> <values...>
    assert words[1:3] == ["/phosphene/status", "ffffsiiif"]
    assert "default" in line and "59.5" in line and "128" in line
    assert words[-2:] == ["3", "7.250000"]         # input overflows, age of analysed audio


def test_status_and_errors_are_answered_to_the_sender(server):
    with client_socket() as s:
        s.sendto(build_message("/phosphene/status"), server.address)
        address, args = parse_message(s.recv(4096))
        assert address == "/phosphene/status"
        assert args[0] == pytest.approx(59.5) and args[3] == pytest.approx(128.0)
        assert args[4] == "default"
        bad = [
            (build_message("/phosphene/param/psi", 9.0), "out of range [0, 2]"),
            (build_message("/phosphene/param/nonsense", 1.0), "unknown parameter"),
            (build_message("/phosphene/param/psi"), "takes 1 argument"),
            (build_message("/phosphene/param/psi", "high"), "must be a number"),
            (build_message("/phosphene/clip/play", "../../etc/passwd"), "not a name"),
            (build_message("/phosphene/effect/blur/amount", 1.0), "unknown effect"),
            (build_message("/phosphene/midi/learn", "nope"), "unknown parameter"),
            (build_message("/elsewhere", 1), "unknown address"),
            (b"\x00garbage\xff", "not valid OSC"),
            # an argument type python-osc skips (with a root-logger warning): rejected whole
            (b"/phosphene/param/psi\x00\x00\x00\x00,xf\x00" + struct.pack(">f", 1.0),
             "unknown argument type"),
            (b"#bundle\x00" + bytes(8) + struct.pack(">i", 8) + b"notosc!!", "neither a message"),
        ]
        for packet, reason in bad:
            s.sendto(packet, server.address)
            address, args = parse_message(s.recv(4096))
            assert address == "/phosphene/error"
            assert reason in args[1], (reason, args)
    stats = server.stats.snapshot()
    assert stats["rejected"]["/phosphene/param/psi"] == 3
    assert stats["rejected"][MALFORMED] == 3
    assert server.drain() == []           # nothing bad reached the engine


def bundle(*contents) -> bytes:
    builder = OscBundleBuilder(IMMEDIATELY)
    for content in contents:
        builder.add_content(OscMessage(content) if content.startswith(b"/") else
                            _parsed_bundle(content))
    return builder.build().dgram


def _parsed_bundle(data: bytes):
    from pythonosc.osc_bundle import OscBundle

    return OscBundle(data)


def test_bundles_nested_or_not_deliver_their_messages_in_order(server):
    inner = bundle(build_message("/phosphene/keyframe/goto", 2))
    packet = bundle(build_message("/phosphene/param/psi", 0.5), inner,
                    build_message("/phosphene/tempo/bpm", 120.0))
    with client_socket() as s:
        s.sendto(packet, server.address)
        events = []
        wait_for(lambda: events.extend(server.drain()) or len(events) >= 3, "3 events")
        assert [(e.address, e.args) for e in events] == [
            ("/phosphene/param/psi", (0.5,)), ("/phosphene/keyframe/goto", (2,)),
            ("/phosphene/tempo/bpm", (120.0,))]
        deep = build_message("/phosphene/param/psi", 0.5)
        for _ in range(12):           # a bundle in a bundle in a bundle ... is refused
            deep = bundle(deep)
        s.sendto(deep, server.address)
        address, args = parse_message(s.recv(4096))
        assert address == "/phosphene/error" and "nested" in args[1]
    assert server.drain() == []


def test_a_burst_of_junk_never_kills_the_server(server, context, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(1234)
    valid = build_message("/phosphene/param/noise", 0.5)
    truncated = build_message("/phosphene/param/speed", 9.5)
    addresses = [r.pattern.replace("<name>", "psi").replace("<effect>", "flash")
                 .replace("<uniform>", "amount").replace("<mode>", "drift") for r in NAMESPACE]
    n, batch = 10_000, 500
    with client_socket() as s:
        for i in range(n):
            kind = i % 6
            if kind == 0:
                packet = rng.randbytes(rng.randrange(1, 200))
            elif kind == 1:
                packet = truncated[: rng.randrange(1, len(truncated))]    # cut short
            elif kind == 2:                                                 # wrong arguments
                packet = build_message(rng.choice(addresses), rng.choice(["x", 1e9, -5, 2.5]),
                                       rng.random(), rng.random())
            elif kind == 3:                                                 # a bogus bundle
                packet = b"#bundle\x00" + rng.randbytes(rng.randrange(0, 64))
            elif kind == 4:                          # argument types nobody knows (python-osc
                tags = "".join(rng.choice("xyzqQ") for _ in range(3))      # warns on these)
                packet = build_message(rng.choice(addresses))[:-4] + \
                    f",{tags}".encode().ljust(8, b"\x00") + rng.randbytes(8)
            else:                                    # a bundle of junk (python-osc warns too)
                junk = rng.randbytes(4 * rng.randrange(1, 8))
                packet = b"#bundle\x00" + bytes(8) + struct.pack(">i", len(junk)) + junk
            s.sendto(packet, server.address)
            if (i + 1) % batch == 0:
                # pace the burst so the kernel's UDP queue never drops: every packet is judged
                wait_for(lambda: counted(server) >= i + 1, f"{i + 1} packets judged")
        s.sendto(valid, server.address)
        events = wait_for(lambda: [e for e in server.drain() if e.address == "/phosphene/param/noise"
                                   and e.args == (0.5,)], "the valid message after the burst")
    assert len(events) == 1
    assert server._thread.is_alive()
    stats = server.stats.snapshot()
    assert counted(server) == n + 1                       # every packet judged, none lost
    # python-osc pads a message cut inside its last argument, so a few cut-short ones parse
    # (as 0.0 or 9.5); everything else is rejected
    assert sum(stats["rejected"].values()) >= 0.9 * n
    assert stats["rejected"][MALFORMED] >= n // 2
    # ... and the log says so once per address or kind of problem, not once per packet
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # at most one line per address the burst used (the namespace's) and per kind of junk
    assert 0 < len(records) <= len(NAMESPACE) + 10, [r.getMessage() for r in records[:20]]
    assert not [r for r in records if r.name == "root"]   # python-osc's own warnings: none
    malformed = [r.getMessage() for r in records if MALFORMED in r.getMessage()]
    assert len(malformed) == len(set(m.split(" from ")[0] for m in malformed))


def counted(server) -> int:
    stats = server.stats.snapshot()
    # a /phosphene/status with reply-shaped arguments is ignored (never answered), not rejected
    return sum(sum(stats[key].values()) for key in ("accepted", "rejected", "ignored"))


def test_osc_list_prints_every_address(capsys):
    assert cli_main(["osc", "--list"]) == 0
    out = capsys.readouterr().out
    for route in NAMESPACE:
        assert route.pattern in out
    assert "value:f [parameter range]" in out and "bpm:f [0..300]" in out


def test_every_latent_mode_is_addressable_and_others_are_named_in_the_refusal(context):
    from phosphene.live.control.routes import Rejected, validate
    from phosphene.live.show.director import MODES

    for mode in MODES:                    # travel included: the table follows the director
        route, args = validate(f"/phosphene/mode/{mode}", [0.5], context)
        assert args == (0.5,)
    with pytest.raises(Rejected, match="unknown mode 'wander'.*travel"):
        validate("/phosphene/mode/wander", [0.5], context)
