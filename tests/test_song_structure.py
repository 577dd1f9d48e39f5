"""The analyzer hears a song's structure, causally: section changes, the bar grid, builds,
drops and breaks, on a synthetic song whose sections are known (tests/synth_audio.py)."""

from __future__ import annotations

import numpy as np
import pytest

from synth_audio import SR, sectioned_song
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.settings import AnalyzerSettings

BAR_S = 2.0            # 120 BPM, 4 beats
SONG = [("pad", 4), ("groove", 6), ("build", 6), ("full", 6), ("break", 4), ("groove", 4)]


def analyze(x, settings=None):
    analyzer = Analyzer(SR, settings)
    hop = analyzer.hop_length
    return [analyzer.process(x[i:i + hop].astype(np.float64))
            for i in range(0, len(x) - hop + 1, hop)]


@pytest.fixture(scope="module")
def song():
    x, starts = sectioned_song(SONG)
    frames = analyze(x)
    return frames, starts, np.array([f.time_s for f in frames])


def test_a_section_change_is_heard_within_a_bar_of_every_boundary_and_never_inside(song):
    frames, starts, _ = song
    heard = [f.time_s for f in frames if f.section]
    for boundary in starts[1:]:
        assert any(boundary <= t <= boundary + BAR_S for t in heard), (boundary, heard)
    # exactly one per boundary: nothing inside a section of steady material
    assert len(heard) == len(starts) - 1, heard


def test_novelty_is_a_curve_that_peaks_at_the_boundaries(song):
    frames, starts, times = song
    novelty = np.array([f.novelty for f in frames])
    assert 0.0 <= novelty.min() and novelty.max() <= 1.0
    for boundary in starts[1:]:
        near = (times >= boundary) & (times <= boundary + BAR_S)
        assert novelty[near].max() >= 0.5             # the threshold reads 0.5
    steady = (times > starts[3] + 3) & (times < starts[4])      # inside "full"
    assert novelty[steady].max() < 0.3


def test_the_bar_grid_restarts_at_a_section_change(song):
    frames, starts, _ = song
    # the groove from 8 s: bars every 2 s from the section's first beat, counted from it
    bars = [(f.time_s, f.bar_index) for f in frames if f.bar and starts[1] < f.time_s < starts[2]]
    assert len(bars) >= 4
    for t, index in bars:
        since = t - starts[1]
        assert abs(since - BAR_S * round(since / BAR_S)) < 0.15, bars
        assert index == round(since / BAR_S), bars
    phases = [f.bar_phase for f in frames if starts[1] + 4 < f.time_s < starts[2]]
    assert 0.0 <= min(phases) and max(phases) < 1.0


def test_phrases_come_every_phrase_bars_on_the_grid():
    x, starts = sectioned_song([("pad", 2), ("groove", 14)])
    frames = analyze(x, AnalyzerSettings(phrase_bars=4))
    phrases = [f.time_s for f in frames if f.phrase]
    assert len(phrases) >= 2
    for t in phrases:
        since = t - starts[1]
        assert abs(since - 4 * BAR_S * round(since / (4 * BAR_S))) < 0.15, phrases


def test_a_build_rises_a_drop_lands_after_it_and_a_break_is_quiet(song):
    frames, starts, times = song
    build = np.array([f.build for f in frames])
    breakdown = np.array([f.breakdown for f in frames])
    sections = dict(zip([name for name, _ in SONG], zip(starts, starts[1:] + [times[-1]])))
    b0, b1 = sections["build"]
    assert build[(times > (b0 + b1) / 2) & (times < b1)].mean() > 0.6
    for name in ("pad", "full", "break"):
        s0, s1 = sections[name]
        assert build[(times > s0 + 2) & (times < s1)].max() < 0.2, name
    drops = [f.time_s for f in frames if f.drop]
    assert len(drops) == 1 and b1 <= drops[0] <= b1 + BAR_S, drops
    k0, k1 = sections["break"]
    assert breakdown[(times > k0 + 1.5) & (times < k1)].min() > 0.8
    f0, f1 = sections["full"]
    assert breakdown[(times > f0 + 1) & (times < f1)].max() < 0.4


def test_structure_features_are_mapping_sources():
    from dataclasses import replace

    from phosphene.live.analysis.features import SOURCES, FeatureFrame
    from phosphene.live.show.mappings import parse_source

    frame = replace(FeatureFrame.silent(0, SR), section=True, build=0.7, phrase_phase=0.25)
    for name in ("novelty", "section", "bar", "bar_phase", "phrase", "phrase_phase", "build",
                 "drop", "breakdown"):
        assert name in SOURCES and parse_source(name).kind == "feature"
    assert frame.source("section") == 1.0 and frame.source("drop") == 0.0
    assert frame.source("build") == 0.7 and frame.source("phrase_phase") == 0.25
