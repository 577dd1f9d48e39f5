"""Every refusal reaches the sender (issue 11, defect 6): actions that fail after validation
(an unknown preset or clip, MIDI learn without MIDI) are answered on ``/phosphene/error`` like
a rejected message; truncated OSC packets are refused, never read as zeros."""

from __future__ import annotations

import queue
import socket
import struct
import time

import pytest

from live_engine_helpers import TIMEOUT_S, EngineRun, tiny_generator, write_clicks, write_presets
from phosphene.live.control.osc_server import MALFORMED, OscServer, build_message, parse_message
from phosphene.live.control.routes import NamespaceContext
from phosphene.live.runtime.engine import EngineOptions
from phosphene.live.show.presets import load_preset
from phosphene.models.bank import Bank


def client() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(TIMEOUT_S)
    return s


def replies(s: socket.socket, count: int) -> list[tuple[str, list]]:
    return [parse_message(s.recvfrom(65536)[0]) for _ in range(count)]


def test_failed_actions_are_answered_to_the_sender(tmp_path):
    preset = write_presets(tmp_path / "presets")
    Bank(tmp_path / "bank", sample_rate=48000, create=True)
    wav = write_clicks(tmp_path / "clicks.wav", [0.5], duration_s=30.0)
    options = EngineOptions(preset=str(preset), audio_file=wav, output="none", headless=True,
                            osc_port=0, bank=tmp_path / "bank")
    with EngineRun(options, generator=tiny_generator()) as run, client() as s:
        server = ("127.0.0.1", run.osc_port)
        for address, args in (("/phosphene/preset/load", ("nosuchpreset",)),
                              ("/phosphene/param/psi", (1.2,)),           # fine: no answer
                              ("/phosphene/clip/play", ("nosuchclip",)),
                              ("/phosphene/midi/learn", ("psi",))):
            s.sendto(build_message(address, *args), server)
        got = replies(s, 3)
        deadline = time.monotonic() + TIMEOUT_S           # psi glides to 1.2 (150 ms)
        while abs(run.engine.state.values["psi"] - 1.2) > 0.01 and time.monotonic() < deadline:
            time.sleep(0.02)
        run.engine.stop()
        report = run.wait()
    assert [(address, args[0]) for address, args in got] == [
        ("/phosphene/error", "/phosphene/preset/load"),
        ("/phosphene/error", "/phosphene/clip/play"),
        ("/phosphene/error", "/phosphene/midi/learn")]
    reasons = [args[1] for _, args in got]
    assert "nosuchpreset" in reasons[0] and "the running one stays" in reasons[0]
    assert "nosuchclip" in reasons[1]
    assert "no MIDI input" in reasons[2]
    # counted in the report under the address that failed; the show went on
    where = {e["where"] for e in report["errors"]}
    assert where == {"/phosphene/preset/load", "/phosphene/clip/play", "/phosphene/midi/learn"}
    assert report["final"]["preset"] == "stage"
    assert report["final"]["parameters"]["psi"] == pytest.approx(1.2, abs=0.01)


@pytest.fixture()
def server():
    preset, _ = load_preset("default")
    context = NamespaceContext(parameters=preset.parameter_specs(),
                               effects=frozenset(preset.effect_names()))
    with OscServer("127.0.0.1", 0, clock=lambda: 512, context=lambda: context) as srv:
        yield srv


@pytest.mark.parametrize("data_bytes", [0, 1, 3])
def test_a_truncated_argument_is_refused_not_read_as_zero(server, data_bytes):
    whole = build_message("/phosphene/param/psi", 0.5)
    assert whole.endswith(struct.pack(">f", 0.5))
    cut = whole[:len(whole) - 4 + data_bytes]          # ",f" with 0..3 of its 4 data bytes
    with client() as s:
        s.sendto(cut, server.address)
        (address, args), = replies(s, 1)
        s.sendto(whole, server.address)                # the whole message still works
        event = server.events.get(timeout=TIMEOUT_S)
    assert address == "/phosphene/error" and args[0] == MALFORMED and "truncated" in args[1]
    assert (event.address, event.args) == ("/phosphene/param/psi", (0.5,))
    with pytest.raises(queue.Empty):
        server.events.get(timeout=0.2)
    stats = server.stats.snapshot()
    assert stats["rejected"] == {MALFORMED: 1}
    assert stats["accepted"] == {"/phosphene/param/psi": 1}


def test_truncated_strings_and_blobs_are_refused(server):
    name = build_message("/phosphene/preset/load", "default")          # ",s" + "default\0"
    blob = b"/phosphene/x\x00\x00\x00\x00,b\x00\x00" + struct.pack(">i", 8) + b"abcd"
    with client() as s:
        for packet in (name[:-1], name[:-4], blob):
            s.sendto(packet, server.address)
        got = replies(s, 3)
    assert all(args[0] == MALFORMED and "truncated" in args[1] for _, args in got)
    assert server.stats.snapshot()["rejected"] == {MALFORMED: 3}
    assert server.events.empty()
