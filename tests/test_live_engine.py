"""The live engine end to end with real parts: a PulseAudio null sink as the microphone playing
a WAV with clicks, the engine headless on EGL, OSC from liblo's ``oscsend`` (and raw junk
datagrams), assertions on the run report and on the rendered frames."""

from __future__ import annotations

import socket
import time

import pytest

from live_engine_helpers import (SR, EngineRun, mean_brightness, oscsend, tiny_generator,
                                 write_clicks, write_presets)
from phosphene.live.runtime.engine import EngineOptions

CLICKS = [0.4 + 0.45 * k for k in range(6)]          # seconds into the WAV




def rising_flash_edges(frames):
    """Indices of frames where the flash mapped to onsets switched on: it jumped up from the
    frame before. A loaded machine's sound server delivers audio in bursts, so the first frame
    that shows an onset may show its flash already part way through its 150 ms release: a
    jump of 0.2 (of the 0.6 a click gives) counts, wherever it started."""
    amount = [f.state.effect_params.get("flash.amount", 0.0) for f in frames]
    return [i for i in range(1, len(frames)) if amount[i] - amount[i - 1] > 0.2]


def test_microphone_clicks_flash_the_picture_and_osc_steers_the_show(pulse, tmp_path):
    preset = write_presets(tmp_path / "presets")
    wav = write_clicks(tmp_path / "clicks.wav", CLICKS, duration_s=3.2)
    options = EngineOptions(preset=str(preset), input="pulse", sample_rate=SR, output="none",
                            headless=True, osc_port=0, duration_s=6.0)
    with EngineRun(options, generator=tiny_generator(), pixels=True) as run:
        port = run.osc_port
        player = pulse.play(wav)
        time.sleep(1.0)
        oscsend(port, "/phosphene/param/psi", "f", 1.5)
        # not OSC at all: counted, answered, and the show goes on
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00garbage, not an OSC packet", ("127.0.0.1", port))
        junk_sent_at = time.monotonic()
        oscsend(port, "/phosphene/param/no_such_parameter", "f", 1.0)
        player.wait(timeout=20)
        psi_before_switch = run.engine.state.values["psi"]
        oscsend(port, "/phosphene/preset/load", "s", "other")
        time.sleep(0.5)
        oscsend(port, "/phosphene/param/noise", "f", 1.7)
        report = run.wait()
    frames = run.observed.frames

    # the report: every click heard, every onset measured on screen
    assert report["onsets"]["detected"] == len(CLICKS)
    assert report["onsets"]["onsets_measured"]["effects"] == len(CLICKS)
    assert report["onsets"]["effects_path_ms"]["max"] is not None
    assert report["audio"]["overflows"] == 0 and not report["audio"]["lost"]
    assert report["audio"]["seconds_analysed"] == pytest.approx(6.0, abs=0.05)
    # OSC: accepted and rejected by address, the junk among the rejected
    osc = report["osc"]
    assert osc["accepted"]["/phosphene/param/psi"] == 1
    assert osc["accepted"]["/phosphene/preset/load"] == 1
    assert osc["rejected"]["<malformed>"] == 1
    assert osc["rejected"]["/phosphene/param/no_such_parameter"] == 1
    # the parameter moved (smoothed toward 1.5), the preset switched, a later value held
    assert psi_before_switch == pytest.approx(1.5, abs=0.01)
    assert report["preset_switches"] == 1
    assert report["final"]["preset"] == "other"
    assert report["final"]["parameters"]["noise"] == pytest.approx(1.7, abs=0.01)
    assert report["final"]["parameters"]["psi"] == pytest.approx(0.4, abs=0.01)  # other's
    assert report["errors"] == []
    # the run went on after the bad packet: frames kept coming at the display rate
    after = [f for f in frames if f.presented_at > junk_sent_at]
    assert len(after) >= 0.5 * 20 * 3.0
    assert report["frames"]["presented"] == len(frames)
    assert report["frames"]["generated"] >= 10

    # the pictures: each onset brightens the frame that shows it
    edges = rising_flash_edges(frames)
    assert len(edges) == len(CLICKS)
    for i in edges:
        assert mean_brightness(frames[i].pixels) > mean_brightness(frames[i - 1].pixels) + 20
    # and the effect chain of the preset switched to: its colour effect is in the state
    assert frames[-1].state.effect_names == ("color", "flash")
