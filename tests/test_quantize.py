"""Quantized actions: events that wait for the next beat or bar (``show/quantize.py``), the
``beat|bar|off`` word of the routes, and a session that holds, releases, records and replays
them. The Link end to end check (a second peer judges where the switch lands on screen) is in
``test_tempo_sync.py``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.control.routes import NamespaceContext, Rejected, validate
from phosphene.live.runtime.session import Session, ShowSource
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.show.events import ControlEvent, EventSchedule
from phosphene.live.show.presets import parse_preset
from phosphene.live.show.quantize import MAX_WAIT_S, Quantizer
from live_engine_helpers import tiny_generator
import synth_audio as S

SR = 48000
HOP = 512


def _frame(sample_index: int, **values) -> FeatureFrame:
    return dataclasses.replace(FeatureFrame.silent(sample_index, SR), **values)


def _released_at(q: Quantizer, *, bpm: float, start_beat: float, unit: str, lookahead: int,
                 hold_at_hop: int = 3, hops: int = 2000) -> tuple[int, float]:
    """Run a quantizer on an external clock at ``bpm`` (beat ``start_beat`` at sample 0);
    hold one event before hop ``hold_at_hop``; returns (the clock it was applied at, the
    sample of the line it waited for, on the true grid)."""
    per_sample = bpm / 60.0 / SR
    clock = 0
    for k in range(hops):
        if k == hold_at_hop:
            assert q.hold("event", unit, clock, lookahead)
        released = q.due(clock)
        if released:
            line = released[0].target * (4 if unit == "bar" else 1)
            return clock, (line - start_beat) / per_sample
        clock += HOP
        q.observe(FeatureFrame.silent(clock, SR), start_beat + clock * per_sample, bpm)
    raise AssertionError("never released")


@pytest.mark.parametrize("unit", ["beat", "bar"])
@pytest.mark.parametrize("lookahead", [0, 4800])
def test_an_event_lands_on_the_next_line_less_the_lookahead(unit, lookahead):
    applied, line = _released_at(Quantizer(SR, HOP), bpm=128.0, start_beat=5.3, unit=unit,
                                 lookahead=lookahead)
    # what the hop after it shows, a lookahead later, is within half a hop of the line
    assert abs(applied + HOP + lookahead - line) <= HOP / 2
    # and it was the first line it could meet: not a line later
    period = SR * 60.0 / 128.0 * (4 if unit == "bar" else 1)
    assert line - (3 * HOP + HOP + lookahead) < period


def test_a_clip_starts_on_the_sample_heard_on_the_line():
    q = Quantizer(SR, HOP)
    per_sample = 120.0 / 60.0 / SR
    clock, lookahead = 0, 2400                       # 50 ms of output latency
    q.observe(FeatureFrame.silent(clock, SR), 0.3, 120.0)
    assert q.hold("kick", "beat", clock, lookahead)
    while not (released := q.due(clock)):
        clock += HOP
        q.observe(FeatureFrame.silent(clock, SR), 0.3 + clock * per_sample, 120.0)
    [r] = released
    line = (1.0 - 0.3) / per_sample                  # beat 1
    assert r.line_sample == pytest.approx(line)
    assert r.start_sample == round(line) - lookahead    # sample-exact, not on the hop
    # ... in the hop it is applied before or the next (the mixer starts a voice anywhere)
    assert clock <= r.start_sample < clock + 2 * HOP


def test_a_line_too_near_for_the_lookahead_is_skipped_for_the_next():
    # beat 7.95 at 120 BPM: the bar line (beat 8) is 25 ms away, less than a 100 ms lookahead
    q = Quantizer(SR, HOP)
    q.observe(FeatureFrame.silent(0, SR), 7.95, 120.0)
    assert q.hold("e", "bar", 0, 4800)
    assert q._held[0].target == 3.0                 # bar 3 (beat 12), not bar 2 (beat 8)


def test_without_a_tempo_there_is_nothing_to_wait_for():
    q = Quantizer(SR, HOP)
    q.observe(FeatureFrame.silent(HOP, SR), None, 120.0)     # no clock, analyzer not locked
    assert not q.hold("e", "beat", HOP, 0)


def test_a_lost_clock_releases_what_waits():
    q = Quantizer(SR, HOP)
    q.observe(FeatureFrame.silent(HOP, SR), 0.5, 60.0)
    assert q.hold("e", "bar", HOP, 0)
    q.observe(FeatureFrame.silent(2 * HOP, SR), None, 60.0)  # the clock went away
    assert [r.item for r in q.due(2 * HOP)] == ["e"]


def test_nothing_waits_longer_than_the_cap():
    q = Quantizer(SR, HOP)
    clock = 0
    q.observe(FeatureFrame.silent(clock, SR), 0.0, 2.0)      # 2 BPM: a bar is two minutes
    assert q.hold("e", "bar", clock, 0)
    waited = 0
    while not q.due(clock):
        clock += HOP
        q.observe(FeatureFrame.silent(clock, SR), clock * 2.0 / 60.0 / SR, 2.0)
        waited += HOP
    assert waited / SR == pytest.approx(MAX_WAIT_S, abs=HOP / SR)


def test_the_analyzer_grid_counts_its_own_beats_and_bars():
    q = Quantizer(SR, HOP)
    frames = [_frame(HOP, tempo_bpm=120.0, beat=True, beat_phase=0.0, bar=True,
                     bar_phase=0.0)]
    q.observe(frames[0], None, 120.0)
    beat = q.grid("beat")
    bar = q.grid("bar")
    assert beat.position == 1.0 and bar.position == 1.0
    assert beat.per_sample == pytest.approx(2.0 / SR)
    assert bar.per_sample == pytest.approx(0.5 / SR)


def test_tempo_lock_takes_the_analyzers_tempo():
    session = _session()
    show = session.show
    show.advance(_frame(HOP, tempo_bpm=0.0))
    routes.perform([ControlEvent(HOP, "/phosphene/tempo/lock")], show)
    assert show.controls.params.target("tempo_bpm") == 0.0     # nothing heard: unchanged
    show.advance(_frame(2 * HOP, tempo_bpm=97.0))
    routes.perform([ControlEvent(2 * HOP, "/phosphene/tempo/lock")], show)
    assert show.controls.params.target("tempo_bpm") == pytest.approx(97.0)
    show.advance(_frame(3 * HOP, tempo_bpm=140.0))             # the analyzer moves on ...
    assert show.controls.tempo_bpm == pytest.approx(97.0)      # ... the locked tempo stays


# -- the routes' word -----------------------------------------------------------------------------
@pytest.mark.parametrize("address,args,expected", [
    ("/phosphene/preset/load", ["verse", "bar"], ("verse", "bar")),
    ("/phosphene/preset/load", ["bar"], ("bar",)),              # a preset named "bar"
    ("/phosphene/preset/next", ["beat"], ("beat",)),
    ("/phosphene/keyframe/goto", [3, "off"], (3, "off")),
    ("/phosphene/clip/play", ["kick", "bar"], ("kick", "bar")),
    ("/phosphene/clip/play", ["kick", 0.5, "beat"], ("kick", 0.5, "beat")),
])
def test_the_quantize_word_is_validated(address, args, expected):
    assert validate(address, args, NamespaceContext())[1] == expected


@pytest.mark.parametrize("address,args", [
    ("/phosphene/clip/play", ["kick", "bars"]),
    ("/phosphene/keyframe/next", ["soon"]),
])
def test_a_wrong_quantize_word_is_rejected_naming_the_choices(address, args):
    with pytest.raises(Rejected, match="quantize must be one of off, beat, bar"):
        validate(address, args, NamespaceContext())


def test_the_word_overrides_the_preset_and_the_record_says_off():
    e = ControlEvent(0, "/phosphene/keyframe/next", ())
    assert routes.quantize_of(e, "bar") == "bar"
    assert routes.quantize_of(ControlEvent(0, "/phosphene/keyframe/next", ("off",)), "bar") \
        == "off"
    assert routes.quantize_of(ControlEvent(0, "/phosphene/param/psi", (0.5,)), "bar") == "off"
    assert routes.unquantized(ControlEvent(0, "/phosphene/clip/play", ("kick", "bar"))).args \
        == ("kick", "off")


# -- a session ------------------------------------------------------------------------------------
PRESET = """\
name: q
output: {width: 32, height: 32, fps: 20}
keyframes: [{seed: 1}, {seed: 2}, {seed: 3}, {seed: 4}]
transition_ms: 0
quantize: bar
analyzer: {hop_length: 512}
"""


class _Record:
    """A recorder's event side: what the session says it did, and at which clock."""

    def __init__(self):
        self.events: list[ControlEvent] = []

    def write_event(self, event: ControlEvent, applied_at: int | None = None) -> None:
        self.events.append(ControlEvent(applied_at, event.address, event.args, event.origin))


def _session(recorder=None) -> Session:
    preset = parse_preset(yaml.safe_load(PRESET))
    generator = FrameGenerator(tiny_generator(), "cpu", max_batch=1)
    return Session(ShowSource(preset, None, "tiny", analyzer=dict(preset.analyzer)), SR,
                   generator, recorder=recorder)


def _play(session: Session, audio: np.ndarray, live: dict[int, list[ControlEvent]] | None = None,
          schedule: EventSchedule | None = None) -> list[tuple[int, int, bool]]:
    """Step the session hop by hop; returns (clock, home keyframe, bar flagged) per hop."""
    out = []
    for k in range(len(audio) // HOP):
        block = audio[k * HOP:(k + 1) * HOP]
        events = schedule.due(session.clock + HOP) if schedule is not None \
            else (live or {}).get(k, [])
        session.route(events)
        frame, state = session.advance(block)
        out.append((frame.sample_index, state.request.keyframe, frame.bar))
    return out


def test_a_keyframe_step_waits_for_the_analyzers_bar_and_replays_the_same():
    audio, _, _ = S.drum_loop(120, duration_s=16.0)
    record = _Record()
    live = _session(record)
    ask_at = int(9.3 * SR) // HOP                      # mid-bar, once the tempo is locked
    hops = _play(live, audio, {ask_at: [ControlEvent(ask_at * HOP, "/phosphene/keyframe/next")]})
    assert live.quantized["held"] == 1 and live.quantized["released"] == 1
    moved = next(k for k, (_, kf, _) in enumerate(hops) if kf != hops[0][1])
    assert moved > ask_at                              # it waited
    # it moved on the hop where the analyzer hears the bar (or the one next to it)
    bars = [k for k, (_, _, bar) in enumerate(hops) if bar]
    assert min(abs(moved - b) for b in bars) <= 1, (moved, bars)
    # the record holds it as done, with the word off, at the clock it was applied at
    [done] = [e for e in record.events if e.address == "/phosphene/keyframe/next"]
    assert done.args == ("off",) and done.sample_index == hops[moved - 1][0]
    # a replay of the record moves at the same hop, though the preset says quantize: bar
    replay = _session()
    again = _play(replay, audio, schedule=EventSchedule(record.events))
    assert [kf for _, kf, _ in again] == [kf for _, kf, _ in hops]
    assert replay.quantized["held"] == 0


def test_a_panic_cancels_what_waits():
    audio, _, _ = S.drum_loop(120, duration_s=12.0)
    session = _session()
    ask_at = int(9.3 * SR) // HOP
    hops = _play(session, audio, {
        ask_at: [ControlEvent(ask_at * HOP, "/phosphene/keyframe/next")],
        ask_at + 1: [ControlEvent((ask_at + 1) * HOP, "/phosphene/panic")]})
    assert session.quantized["held"] == 1 and session.quantizer.waiting == 0
    assert session.quantized["released"] == 0
    assert len({kf for _, kf, _ in hops}) == 1          # the step never happened
