"""Tempo sync: an external clock's tempo and beat reach the show as control events.

The show side is pure (beat anchor, beat-synced LFOs, replayed events); the Link side runs a
second Ableton Link peer (aalink) inside the test, on loopback, against a running engine.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import yaml

from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.control.routes import NamespaceContext, validate
from phosphene.live.runtime.engine import EngineOptions
from phosphene.live.show.events import ControlEvent
from phosphene.live.show.presets import parse_preset as parse_preset_data
from phosphene.live.show.show import GeneratorFacts, Show
from live_engine_helpers import EngineRun, tiny_generator, write_clicks, write_presets

SR = 48000
HOP = 1024

LFO_PRESET = """\
name: lfo
output: {width: 32, height: 32, fps: 20}
keyframes: [{seed: 1}, {seed: 2}]
mappings:
  - {source: "lfo:saw:4beats", target: psi, gain: 1.0}
"""


def parse_preset(text: str):
    return parse_preset_data(yaml.safe_load(text))


def _show(text: str = LFO_PRESET) -> Show:
    return Show(parse_preset(text), GeneratorFacts.from_generator(tiny_generator()), SR)


def _run(show: Show, events: list[ControlEvent], hops: int) -> list[float]:
    """Advance hop by hop, applying events by the event rule; the LFO's phase per hop."""
    phases, schedule, t = [], sorted(events, key=lambda e: e.sample_index), 0
    for _ in range(hops):
        t += HOP
        due = [e for e in schedule if e.sample_index < t]
        schedule = [e for e in schedule if e.sample_index >= t]
        routes.perform(due, show)
        show.advance(FeatureFrame.silent(t, SR))
        phases.append(show.controls.bank.states[0].lfo_phase)
    return phases


def test_the_beat_route_is_validated_like_any_other():
    route, args = validate("/phosphene/tempo/beat", [6.5], NamespaceContext())
    assert args == (6.5,)
    with pytest.raises(routes.Rejected):
        validate("/phosphene/tempo/beat", [-1.0], NamespaceContext())


def test_beat_synced_lfo_follows_the_external_beat_and_replays_the_same():
    events = [ControlEvent(0, "/phosphene/tempo/bpm", (128.0,), "link"),
              ControlEvent(0, "/phosphene/tempo/beat", (2.0,), "link"),     # half a 4-beat cycle
              ControlEvent(20 * HOP, "/phosphene/tempo/beat", (41.0,), "link")]
    first = _run(_show(), events, 40)
    show = _show()
    again = _run(show, events, 40)
    assert first == again                                # deterministic: a replay is the same
    assert show.controls.tempo_bpm == pytest.approx(128.0)
    # hop 1 ends at HOP samples: 2 beats + HOP at 128 BPM, over a 4-beat cycle
    beats_per_sample = 128.0 / 60.0 / SR
    assert first[0] == pytest.approx((2.0 + HOP * beats_per_sample) / 4.0 % 1.0)
    # after the second sync the phase is counted from beat 41 (a jump, as the clock said)
    assert first[20] == pytest.approx((41.0 + HOP * beats_per_sample) / 4.0 % 1.0)
    assert show.beat() == pytest.approx(41.0 + 20 * HOP * beats_per_sample)


def test_without_an_external_clock_the_lfo_counts_at_the_analyzer_tempo():
    show = _show()
    phases = _run(show, [], 3)
    assert show.beat() is None
    beats = 3 * HOP / SR * 120.0 / 60.0                  # the fallback tempo: 120 BPM
    assert phases[-1] == pytest.approx(beats / 4.0 % 1.0)


def test_the_beat_goes_on_through_a_preset_switch():
    show = _show()
    _run(show, [ControlEvent(0, "/phosphene/tempo/beat", (8.0,), "link")], 2)
    before = show.beat()
    show.switch_preset(parse_preset(LFO_PRESET.replace("name: lfo", "name: other")))
    assert show.beat() == pytest.approx(before)


# -- Ableton Link ---------------------------------------------------------------------------------
aalink = pytest.importorskip("aalink", reason="pip install 'phosphene[link]'")


class LinkPeer:
    """Another Link peer (a DAW stand-in) on its own asyncio loop, holding the session at
    ``bpm``."""

    def __init__(self, bpm: float):
        self.bpm = bpm
        self.beat = 0.0
        self.peers = 0                                     # the most it has seen at once
        self.beat_read_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        link = aalink.Link(self.bpm)
        link.quantum = 4
        link.enabled = True
        while not self._stop.is_set():
            self.peers = max(self.peers, link.num_peers)
            if abs(link.tempo - self.bpm) > 1e-6:
                link.tempo = self.bpm                      # the session's tempo is ours
            self.beat, self.beat_read_at = link.beat, time.monotonic()
            await asyncio.sleep(0.005)
        link.enabled = False

    def __enter__(self) -> "LinkPeer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def test_engine_follows_a_link_peer_at_128_bpm(tmp_path):
    preset = write_presets(tmp_path / "presets")
    wav = write_clicks(tmp_path / "clicks.wav", [0.5, 1.5], duration_s=40.0)
    options = EngineOptions(preset=str(preset), audio_file=wav, output="none", headless=True,
                            osc_port=None, link=True)
    with LinkPeer(128.0) as peer, EngineRun(options, generator=tiny_generator()) as run:
        engine = run.engine
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            if abs(engine._status()["tempo_bpm"] - 128.0) < 0.5 and engine.show.beat() is not None:
                break
            time.sleep(0.05)
        status = engine._status()
        # the show's beat against the peer's (both read now), until three readings in a row
        # agree: the show's beat runs on the sample clock, which a loaded machine may hold a
        # little behind the wall clock just after the start
        offsets: list[float] = []
        settle_by = time.monotonic() + 15.0
        while time.monotonic() < settle_by:
            time.sleep(0.2)
            show_beat = engine.show.beat()
            age_s = time.monotonic() - peer.beat_read_at
            peer_beat = peer.beat + age_s * 128.0 / 60.0
            offsets.append(((show_beat - peer_beat + 2.0) % 4.0) - 2.0)   # within the bar
            if len(offsets) >= 3 and max(abs(o) for o in offsets[-3:]) < 0.25:
                break
        run.engine.stop()
        report = run.wait()
    assert peer.peers >= 1, (status, report["link"])      # the peer saw the engine join
    assert status["tempo_bpm"] == pytest.approx(128.0, abs=0.5)
    assert report["link"]["peers"] >= 1
    assert report["link"]["tempo_bpm"] == pytest.approx(128.0, abs=0.5)
    # the show's beat phase is the session's within a hop or two of audio (and the queue)
    assert max(abs(o) for o in offsets[-3:]) < 0.25, offsets


def test_a_quantized_preset_switch_lands_on_the_link_bar_line(tmp_path):
    """The presets say ``quantize: bar``: a preset switch asked for mid-bar waits for the Link
    session's next bar line and fires early by the measured render latency, so the first
    picture of the new preset is on screen within one frame of the line (the peer's own
    beat, read from its clock, is the judge). Three switches; the median must land within a
    frame (one display stall of a shared CI machine must not decide)."""
    folder = tmp_path / "presets"
    stage = write_presets(folder)
    other = folder / "other.yaml"
    stage.write_text(stage.read_text() + "quantize: bar\ncrossfade_ms: 0\n")
    other.write_text(other.read_text().replace("crossfade_ms: 300", "crossfade_ms: 0")
                     + "quantize: bar\n")
    wav = write_clicks(tmp_path / "clicks.wav", [0.5, 1.5], duration_s=60.0)
    options = EngineOptions(preset=str(stage), audio_file=wav, output="none", headless=True,
                            osc_port=None, link=True)
    bpm = 128.0

    with LinkPeer(bpm) as peer, EngineRun(options, generator=tiny_generator()) as run:
        def peer_beat_now() -> float:
            return peer.beat + (time.monotonic() - peer.beat_read_at) * bpm / 60.0

        engine = run.engine
        settle_by = time.monotonic() + 20.0
        agreed = 0
        while time.monotonic() < settle_by and agreed < 3:     # the show follows the session
            time.sleep(0.2)
            beat = engine.show.beat()
            if beat is None or abs(engine._status()["tempo_bpm"] - bpm) > 0.5:
                continue
            agreed = agreed + 1 if abs(((beat - peer_beat_now() + 2.0) % 4.0) - 2.0) < 0.25 \
                else 0
        time.sleep(1.0)                                  # a few figures of render latency
        for name in ("other", "stage", "other"):
            # asked in the middle of a bar, as a performer would (any time)
            while not 1.5 <= peer_beat_now() % 4.0 <= 2.5:
                time.sleep(0.01)
            engine.post("/phosphene/preset/load", name)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and engine.show.preset.name != name:
                time.sleep(0.05)
            time.sleep(0.5)
        t_ref, beat_ref = peer.beat_read_at, peer.beat
        run.engine.stop()
        report = run.wait()
    quantize = report["quantize"]
    assert quantize["held"] == 3 and quantize["released"] == 3, quantize
    hop = report["audio"]["hop_length"]
    offsets_s = []
    for release, name in zip(quantize["last"], ("other", "stage", "other")):
        assert release["address"] == "/phosphene/preset/load" and release["unit"] == "bar"
        assert release["lookahead_samples"] > 0          # the measured render latency
        # the first frame whose generator picture was made after the switch
        shown = next(f for f in run.observed.frames
                     if f.generator_sample is not None
                     and f.generator_sample >= release["applied_at"] + hop)
        assert shown.state.preset_name == name
        beat_on_screen = beat_ref + (shown.presented_at - t_ref) * bpm / 60.0
        offsets_s.append((((beat_on_screen + 2.0) % 4.0) - 2.0) * 60.0 / bpm)
    # one frame: the display's period (20 fps), or its measured frame time when a loaded
    # machine held it below that rate (the picture cannot change between two frames)
    frame_s = max(1.0 / 20.0, report["frames"]["frame_time_ms"]["p50"] / 1000.0)
    assert sorted(abs(o) for o in offsets_s)[1] < frame_s, (offsets_s, frame_s, quantize)
