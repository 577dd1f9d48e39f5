"""The travel mode: the picture moves on at the phrase and section events it is given, past the
last keyframe to fresh seeds, glides without jumps, stretches in builds, lands on drops and
calms in breaks -- and a render with it replays frame for frame."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import yaml

from synth_audio import sectioned_song
from phosphene.errors import PhospheneError
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.show.director import Director
from phosphene.live.show.modes import DirectorSettings, TravelSettings
from phosphene.live.show.presets import parse_preset

SR = 48000
HOP = 480                    # 10 ms hops: 50 hops a beat at 120 BPM
DT = HOP / SR


def keyframes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((6, 8)).astype(np.float32) for _ in range(n)]


def director(n=3, fresh=None, **travel):
    settings = DirectorSettings(travel=TravelSettings(weight=1.0, **travel))
    return Director(keyframes(n), settings, fresh_scene=fresh)


def frames(hops, events=None, tempo=120.0, **features):
    """Feature frames at 120 BPM: a bar every 200 hops (bar_index counting), plus the
    ``events`` {hop: {field: value}}."""
    out = []
    for i in range(1, hops + 1):
        f = replace(FeatureFrame.silent(i * HOP, SR), gated=False, tempo_bpm=tempo, **features)
        if tempo > 0 and i % 200 == 0:
            f = replace(f, bar=True, bar_index=i // 200)
        for name, value in (events or {}).get(i, {}).items():
            f = replace(f, **{name: value})
        out.append(f)
    return out


def run(d, fs, values=None):
    values = {"mode.travel": 1.0, **(values or {})}
    return [d.update(values, f, DT) for f in fs]


def moves(requests):
    """Hops (1-based) at which the home keyframe changed."""
    return [i + 1 for i in range(1, len(requests))
            if requests[i].keyframe != requests[i - 1].keyframe]


def test_travel_moves_exactly_at_the_phrase_and_section_events_it_is_given():
    d = director(n=8, on=("phrase", "section"), bars=2, min_beats=4)
    # phrases every 2 bars: hops 400, 800, 1200; a section at 1000; one at 1210 is too soon
    # after the phrase at 1200 (less than 4 beats = 200 hops) and is not a second move
    fs = frames(1300, {1000: {"section": True}, 1210: {"section": True}})
    assert moves(run(d, fs)) == [400, 800, 1000, 1200]
    assert d.state.index == 4


def test_each_trigger_alone():
    phrase_only = director(n=8, on="phrase", bars=1)
    fs = frames(700, {300: {"section": True}})
    assert moves(run(phrase_only, fs)) == [200, 400, 600]
    section_only = director(n=8, on="section")
    assert moves(run(section_only, frames(700, {300: {"section": True}}))) == [300]
    # no tempo locked: phrases by the clock (120 BPM when nothing says otherwise)
    clock = director(n=8, on="phrase", bars=1)
    assert moves(run(clock, frames(450, tempo=0.0))) == [200, 400]


def test_a_weight_of_zero_stops_the_travel():
    d = director(n=8, on=("phrase", "section"), bars=1)
    requests = run(d, frames(500, {300: {"section": True}}), {"mode.travel": 0.0})
    assert moves(requests) == []


def test_the_transition_is_tempo_locked_and_the_glide_has_no_jump():
    d = director(n=5, on="phrase", bars=2, length=2, unit="beats", glide=0.5, new_seeds=False)
    requests = run(d, frames(700))
    w = np.array([r.w for r in requests])
    step = np.abs(np.diff(w, axis=0)).max(axis=(1, 2))
    typical = np.median(step[step > 0])
    # the move at hop 400 starts where the glide had got to: no jump bigger than the glide's
    assert step[398:402].max() < 10 * typical
    k = d.keyframes
    # before the move the picture had glided half-way toward the scene after next ...
    before = w[398]
    t = float(np.sum((before - k[0]) * (k[2] - k[0])) / np.sum((k[2] - k[0]) ** 2))
    assert 0.45 < t < 0.55
    # ... and the move lands on the next scene two beats (100 hops) later, plus the new
    # phrase's glide toward the one after it
    glide = 0.5 * 100 / 400
    np.testing.assert_allclose(w[499], k[1] + glide * (k[3] - k[1]), atol=1e-5)


def test_past_the_last_keyframe_come_fresh_seeds_in_order():
    made = []

    def fresh(k):
        made.append(k)
        return np.full((6, 8), float(100 + k), np.float32)

    d = director(n=2, fresh=fresh, on="phrase", bars=1)
    run(d, frames(1000))            # five moves
    assert d.state.index == 5
    assert made == [0, 1, 2, 3, 4, 5]   # two ahead of home (the glide's), each made once
    assert len(d.keyframes) == 8
    assert float(d.keyframes[5][0, 0]) == 103.0
    # without new seeds the travel wraps around the keyframes
    wrap = director(n=2, fresh=fresh, on="phrase", bars=1, new_seeds=False)
    run(wrap, frames(600))
    assert len(wrap.keyframes) == 2 and wrap.state.index == 1


def test_onset_density_travels_faster_with_more_onsets():
    def scenes_after(onset_every):
        d = director(n=50, on="onset-density", bars=1, density=4.0)
        events = {i: {"onset": True} for i in range(1, 2001) if i % onset_every == 0}
        run(d, frames(2000, events))
        return d.state.index
    dense, sparse = scenes_after(10), scenes_after(50)    # 10 vs 2 onsets a second
    assert dense > 2 * sparse and sparse >= 1


def test_a_drop_lands_on_a_new_scene_within_drop_length():
    d = director(n=8, on="section", drop_length=0.5, min_beats=4, glide=0.0)
    fs = frames(400, {100: {"section": True}, 150: {"drop": True}, 300: {"drop": True}})
    requests = run(d, fs)
    # the drop 50 hops after the section change lands that move (quarter of a second) ...
    assert moves(requests) == [100, 300]
    w = np.array([r.w for r in requests])
    np.testing.assert_allclose(w[150 + 25], d.keyframe(1), atol=1e-6)
    # ... and a later one moves on at once: half a beat (25 hops) to the next scene
    np.testing.assert_allclose(w[300 + 25], d.keyframe(2), atol=1e-6)


def test_a_build_stretches_the_picture_and_a_break_calms_it():
    ks = keyframes(3)
    centre = np.mean(ks, axis=0)

    def final_w(**features):
        d = Director(ks, DirectorSettings(travel=TravelSettings(weight=1.0, build=0.5, calm=1.0,
                                                                glide=0.0, on="section")))
        return run(d, frames(50, **features))[-1].w

    plain = final_w()
    built = final_w(build=1.0)
    calm = final_w(breakdown=1.0)
    spread = lambda w: float(np.linalg.norm(w - centre))   # noqa: E731
    assert spread(built) == pytest.approx(1.5 * spread(plain), rel=1e-5)
    assert spread(calm) < 0.8 * spread(plain)


def test_travel_settings_errors_name_the_key():
    base = yaml.safe_load("""
        keyframes: [{seed: 1}]
        modes:
          travel: {weight: 1.0, on: [phrase, section], bars: 8}
    """)
    assert parse_preset(base).modes.travel.on == ("phrase", "section")   # `on:` despite YAML
    for change, message in (({"on": "chorus"}, "modes.travel.on"),
                            ({"bars": 0}, "modes.travel.bars"),
                            ({"unit": "minutes"}, "modes.travel.unit"),
                            ({"speed": 2}, "modes.travel.speed: unknown key"),
                            ({"on": []}, "at least one trigger")):
        data = yaml.safe_load(yaml.safe_dump(base))
        data["modes"]["travel"].update(change)
        with pytest.raises(PhospheneError, match=message.replace(".", r"\.")):
            parse_preset(data, origin="mine.yaml")


# -- through the whole pipeline -----------------------------------------------------------------
TRAVEL_PRESET = """\
name: travel-test
model: builtin:abstract
output: {width: 32, height: 32, fps: 4}
keyframes: [{seed: 3}, {seed: 4}]
modes:
  travel: {weight: 1.0, on: [phrase, section], bars: 1, length: 1, new_seeds: true}
  volume-blend: {weight: 0.3}
mappings:
  - {source: build, target: flash.amount, gain: 0.3}
effects:
  - {name: feedback, params: {decay: 0.5}}
  - {name: flash}
"""


@pytest.fixture(scope="module")
def G():
    from phosphene.models import load_generator

    return load_generator("builtin:abstract")


@pytest.fixture(scope="module")
def song_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("travel")
    x, _ = sectioned_song([("pad", 2), ("groove", 3), ("full", 2)], sr=22050)
    sf.write(d / "song.wav", x, 22050)
    (d / "travel.yaml").write_text(TRAVEL_PRESET)
    return d


def test_an_offline_render_and_its_replay_are_frame_exact_with_travel(G, song_file, tmp_path):
    from phosphene.live.analysis.analyzer import Analyzer
    from phosphene.live.analysis.settings import AnalyzerSettings
    from phosphene.live.runtime.offline import OfflineRender, RenderSettings
    from phosphene.live.runtime.recording import Recorder
    from phosphene.live.runtime.session import source_from_preset, source_from_recording
    from phosphene.live.show.show import GeneratorFacts, Show

    audio = song_file / "song.wav"
    settings = RenderSettings(size=(32, 32), fps=4, batch=4, progress=False)

    def render():
        job = OfflineRender(audio, source_from_preset(str(song_file / "travel.yaml")), settings,
                            generator=G)
        return job, [f.copy() for f in job.frames()]

    job, first = render()
    _, second = render()
    assert len(first) == math.ceil(14.0 * 4)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    # it travelled: past both keyframes into fresh seeds
    assert job.show.director.state.fresh_scenes >= 2
    assert job.show.state().request.keyframe >= 3

    # a "live" run recorded hop by hop, then replayed from the recording: the same states
    preset = parse_preset(yaml.safe_load(TRAVEL_PRESET))
    x, sr = sf.read(audio, dtype="float32")
    analyzer = Analyzer(sr, AnalyzerSettings(**preset.analyzer))
    hop = analyzer.hop_length
    rec = Recorder(tmp_path / "set", sr, preset_text=TRAVEL_PRESET, preset_name=preset.name,
                   model_source="builtin:abstract", hop_length=hop)
    show = Show(preset, GeneratorFacts.from_generator(G), sr)
    live = []
    for i in range(math.ceil(len(x) / hop)):
        block = np.zeros(hop, np.float32)
        chunk = x[i * hop:(i + 1) * hop]
        block[:len(chunk)] = chunk
        rec.write_audio(chunk)
        live.append(show.advance(analyzer.process(block)))
    rec.close()
    source, path = source_from_recording(tmp_path / "set", None)
    replay = OfflineRender(path, source, settings, generator=G)
    for s in live:
        r = replay.timeline.state_at(s.sample_index)
        assert r.request.keyframe == s.request.keyframe, s.sample_index
        assert np.array_equal(r.w, s.w), s.sample_index
    # (a fresh job: a timeline only runs forward)
    replayed = OfflineRender(path, source, settings, generator=G).frames()
    assert [f.tobytes() for f in replayed] == [f.tobytes() for f in first]
