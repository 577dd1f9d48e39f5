"""Set recordings: the Recorder's files, reading them back (also after a crash), and a replay
that reaches the same parameter values at the same times, and the same frames, as the live run
that was recorded."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from offline_material import BUSY_PRESET, FLASH_PRESET, SR, write_clicks
from phosphene.cli import main
from phosphene.errors import PhospheneError
from phosphene.live.show.events import ControlEvent
from phosphene.live.runtime.recording import Recorder, read_recording
from phosphene.live.show.events import PRESET_LOADED


def make_recorder(d: Path, **kwargs) -> Recorder:
    return Recorder(d, SR, preset_text=BUSY_PRESET, preset_name="busy-test",
                    model_source="builtin:abstract", hop_length=256, **kwargs)


def test_round_trip(tmp_path):
    d = tmp_path / "set"
    blocks = [np.sin(np.arange(i * 256, (i + 1) * 256) / 20.0).astype(np.float32) * 0.3
              for i in range(10)]
    events = [ControlEvent(300, "/phosphene/param/psi", (np.float32(0.5),)),
              ControlEvent(300, "/phosphene/keyframe/next", ()),
              ControlEvent(1200, "/phosphene/effect/flash/enable", (0,), origin="midi")]
    with make_recorder(d) as rec:
        for b in blocks:
            rec.write_audio(b)
        for e in events:
            rec.write_event(e)
    audio, read_events, session = read_recording(d)
    x, sr = sf.read(audio, dtype="float32")
    assert sr == SR and np.array_equal(x, np.concatenate(blocks))
    assert [(e.sample_index, e.address, e.origin) for e in read_events] == \
        [(e.sample_index, e.address, e.origin) for e in events]
    assert read_events[0].args == (0.5,) and read_events[2].args == (0,)
    assert session["sample_rate"] == SR and session["hop_length"] == 256
    assert session["preset_yaml"] == BUSY_PRESET and session["preset_name"] == "busy-test"
    assert session["model_source"] == "builtin:abstract"
    assert session["samples"] == 2560 and session["events"] == 3
    assert session["phosphene_version"]


def test_truncated_last_line_is_skipped_but_a_broken_middle_line_is_an_error(tmp_path):
    d = tmp_path / "set"
    with make_recorder(d) as rec:
        rec.write_audio(np.zeros(512, np.float32))
        rec.write_event(ControlEvent(10, "/phosphene/param/psi", (0.4,)))
        rec.write_event(ControlEvent(20, "/phosphene/param/noise", (0.1,)))
    events_file = d / "events.jsonl"
    with open(events_file, "a") as f:
        f.write('{"sample_index": 30, "address": "/phosph')      # the crash hit mid-line
    assert [e.sample_index for e in read_recording(d).events] == [10, 20]

    lines = events_file.read_text().splitlines()
    events_file.write_text("\n".join([lines[0], "not json", lines[1]]) + "\n")
    with pytest.raises(PhospheneError, match="line 2"):
        read_recording(d)


def test_a_crashed_recording_still_reads(tmp_path):
    """The process dies without close(): the events and samples written so far survive."""
    d = tmp_path / "crashed"
    code = f"""
import os, numpy as np
from phosphene.live.show.events import ControlEvent
from phosphene.live.runtime.recording import Recorder
rec = Recorder({str(d)!r}, {SR}, preset_text="x: 1", preset_name="p", model_source="m")
for i in range(8):
    rec.write_audio(np.full(256, 0.25, np.float32))
rec.write_event(ControlEvent(512, "/phosphene/param/psi", (0.9,)))
os._exit(3)
"""
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 3
    audio, events, session = read_recording(d)
    x, _ = sf.read(audio, dtype="float32")
    assert len(x) == 8 * 256 and np.allclose(x, 0.25)
    assert [(e.sample_index, e.args) for e in events] == [(512, (0.9,))]
    assert session["model_source"] == "m"


def test_recorder_refuses_a_folder_holding_an_earlier_set(tmp_path):
    d = tmp_path / "set"
    make_recorder(d).close()
    with pytest.raises(PhospheneError, match="not empty"):
        make_recorder(d)


def test_not_a_recording_is_a_clear_error(tmp_path):
    with pytest.raises(PhospheneError, match="session.json"):
        read_recording(tmp_path)


# -- replay ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def G():
    from phosphene.models import load_generator

    return load_generator("builtin:abstract")


def live_run(G, audio: Path, record_dir: Path):
    """What the live engine does, hop by hop, without sound card or window: blocks in; events
    queued as they "arrive" mid-hop, stamped with the engine's clock (the last hop processed),
    recorded, and drained at the start of the next hop -- a preset switch performed while
    draining, the show's events applied through the routes. Returns the state after every hop."""
    from phosphene.live.analysis.analyzer import Analyzer
    from phosphene.live.analysis.settings import AnalyzerSettings
    from phosphene.live.control import routes
    from phosphene.live.show.presets import parse_preset
    from phosphene.live.show.show import GeneratorFacts, Show

    preset = parse_preset(yaml.safe_load(BUSY_PRESET))
    other = parse_preset(yaml.safe_load(FLASH_PRESET))
    x, sr = sf.read(audio, dtype="float32")
    analyzer = Analyzer(sr, AnalyzerSettings(**preset.analyzer))
    hop = analyzer.hop_length
    rec = Recorder(record_dir, sr, preset_text=BUSY_PRESET, preset_name=preset.name,
                   model_source="builtin:abstract", hop_length=hop)
    show = Show(preset, GeneratorFacts.from_generator(G), sr)
    show.recorder = rec
    # (arrival sample, address, args): OSC-like messages landing in the middle of hops
    arrivals = [
        (3000, "/phosphene/param/psi", (1.4,)),
        (5100, "/phosphene/param/speed", (3.0,)),
        (9000, "/phosphene/keyframe/next", ()),
        (12000, "/phosphene/effect/feedback/enable", (0,)),
        (16000, "/phosphene/effect/feedback/enable", (1,)),
        (20000, "/phosphene/effect/flash/amount", (0.3,)),
        (23900, "/phosphene/param/noise", (0.8,)),           # same hop as the switch
        (23950, "/phosphene/preset/load", ("flash-test",)),
        (30000, "/phosphene/param/noise", (1.0,)),
    ]
    states = [show.state()]            # what is on screen before the first hop ends
    queue: list[ControlEvent] = []
    n_hops = math.ceil(len(x) / hop)
    for i in range(n_hops):
        block = np.zeros(hop, np.float32)
        chunk = x[i * hop:(i + 1) * hop]
        block[:len(chunk)] = chunk
        # drain: everything that arrived while the previous hop was being processed
        for_show = []
        for event in queue:
            rec.write_event(event, applied_at=show.sample_index)
            if event.address == "/phosphene/preset/load":
                show.switch_preset(other, crossfade_s=0.3)
            else:
                for_show.append(event)
        # arriving while this hop is processed: stamped with the clock before it (i * hop),
        # applied before the next hop -- the recorder stamps them with the clock at the drain
        queue = [ControlEvent(show.sample_index, a, args) for t, a, args in arrivals
                 if i * hop < t <= (i + 1) * hop]
        rec.write_audio(chunk)
        routes.perform(for_show, show)
        states.append(show.advance(analyzer.process(block)))
    rec.close()
    return states


def state_at(states, sample_index):
    """Live: the state on screen at ``sample_index`` (after the last hop ending by then)."""
    chosen = states[0]
    for s in states[1:]:
        if s.sample_index <= sample_index:
            chosen = s
    return chosen


def test_replay_reaches_the_same_values_at_the_same_times_and_the_same_frames(G, tmp_path):
    from phosphene.live.runtime.generation import FrameGenerator
    from phosphene.live.runtime.offline import (EffectStage, OfflineRender, RenderSettings,
                                                frame_sample_index)
    from phosphene.live.runtime.session import source_from_recording

    audio = write_clicks(tmp_path / "in.wav", times=(0.3, 0.8, 1.3, 1.7), duration_s=2.0)
    live = live_run(G, audio, tmp_path / "set")

    audio_path, events, session = read_recording(tmp_path / "set")
    assert any(e.address == PRESET_LOADED for e in events)
    assert len(events) == 10
    # the recorded audio is what the analyzer heard
    assert np.array_equal(sf.read(audio_path, dtype="float32")[0],
                          sf.read(audio, dtype="float32")[0])

    def replay(batch):
        source, path = source_from_recording(tmp_path / "set", None)
        return OfflineRender(path, source, RenderSettings(size=(64, 64), fps=12, batch=batch,
                                                         progress=False), generator=G)

    job = replay(1)
    for s in live[1:]:
        r = job.timeline.state_at(s.sample_index)
        assert r.sample_index == s.sample_index
        assert dict(r.values) == dict(s.values), s.sample_index
        assert np.array_equal(r.w, s.w), s.sample_index
        assert (r.noise_seed, r.noise_strength, r.psi, r.request.keyframe) == \
            (s.noise_seed, s.noise_strength, s.psi, s.request.keyframe), s.sample_index
        assert dict(r.effects_enabled) == dict(s.effects_enabled)
        assert r.preset_name == s.preset_name
    # the events did something: the run went through all of it
    end = live[-1]
    assert end.preset_name == "flash-test" and end.values["noise"] > 0.9
    mid = state_at(live, 22000)
    assert mid.values["psi"] > 1.3 and mid.values["speed"] > 2.9
    assert dict(state_at(live, 14000).effects_enabled)["feedback"] is False

    # frames: the live states at the video frames' times through the same generator and chain
    generator = FrameGenerator(G, "cpu", max_batch=1)
    stage = EffectStage(64, 64, "letterbox", SR)
    live_frames = []
    fps = job.fps
    try:
        for k in range(job.n_frames):
            s = frame_sample_index(k, 0, fps, SR)
            state = state_at(live, s)
            out = stage.render(generator.generate(state.request), state, s / SR)
            if out is not None:
                live_frames.append(out.copy())
        live_frames += stage.drain()
    finally:
        stage.close()
    replayed = [f.copy() for f in replay(1).frames()]
    assert len(replayed) == len(live_frames) == math.ceil(2.0 * 12)
    for k, (a, b) in enumerate(zip(live_frames, replayed)):
        assert np.array_equal(a, b), k
    assert len({f.tobytes() for f in replayed}) > len(replayed) // 2   # it moves


def test_replay_cli_renders_the_recorded_set_at_another_size(G, tmp_path, capsys):
    audio = write_clicks(tmp_path / "in.wav", times=(0.3,), duration_s=1.0)
    d = tmp_path / "set"
    with Recorder(d, SR, preset_text=FLASH_PRESET, preset_name="flash-test",
                  model_source="builtin:abstract", hop_length=256) as rec:
        rec.write_audio(sf.read(audio, dtype="float32")[0])
        rec.write_event(ControlEvent(5000, "/phosphene/param/psi", (1.0,)))
    out = tmp_path / "replay.mp4"
    code = main(["render", "--replay", str(d), "-o", str(out), "--size", "48x32", "--fps", "10",
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 recorded events" in captured.err
    import av

    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
        assert (frames[0].width, frames[0].height) == (48, 32) and len(frames) == 10
        assert c.streams.audio


def test_session_json_is_valid_json_from_the_start(tmp_path):
    d = tmp_path / "set"
    rec = make_recorder(d)
    try:
        data = json.loads((d / "session.json").read_text())
        assert data["sample_rate"] == SR and "samples" not in data
    finally:
        rec.close()
    assert json.loads((d / "session.json").read_text())["samples"] == 0
