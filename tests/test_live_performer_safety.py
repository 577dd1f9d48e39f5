"""Performer safety on the real engine, steered by liblo's ``oscsend``: a blackout fades the
picture to black within a fraction of a second, stops the clips and comes back; a freeze holds
the very same pixels while the analysis goes on hearing onsets, and lets go again; a recording
of the set replays both pixel for pixel."""

from __future__ import annotations

import time

import numpy as np
import pytest

import synth_audio as S
from live_engine_helpers import (SR, TIMEOUT_S, EngineRun, oscsend, tiny_generator,
                                 write_clicks, write_presets)
from phosphene.live.runtime.engine import EngineOptions
from phosphene.live.runtime.replay import LiveFrameReplay
from phosphene.live.show.safety import BLACKOUT_IN_S
from phosphene.models.bank import Bank

DURATION_S = 7.0
CLICKS = [0.25 + 0.3 * i for i in range(int(DURATION_S / 0.3))]   # onsets all through
BLACKOUT_AT, BACK_AT, FREEZE_AT, UNFREEZE_AT = 1.0, 2.0, 3.8, 5.9
SETTLE_S = 1.3        # a held picture settles once the last generator frame is crossfaded in


def wait_for_clock(run: EngineRun, seconds: float) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while run.engine.clock < seconds * SR:
        assert run.thread.is_alive(), "the engine stopped early"
        assert time.monotonic() < deadline, f"the engine's clock never reached {seconds} s"
        time.sleep(0.005)
    return time.monotonic()


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """One recorded live run with a clip bank: a clip plays, a blackout, the picture back, a
    freeze and its release, each sent with ``oscsend`` once the engine's clock passes it."""
    tmp = tmp_path_factory.mktemp("safety")
    bank = Bank(tmp / "bank", sample_rate=SR, create=True)
    clip, _ = S.clicks([0.5 * i for i in range(1, 20)], 10.0, amp=0.3)
    bank.add("long", clip, SR, source={"backend": "test", "what": "ten seconds of clicks"})
    preset = write_presets(tmp / "presets")
    wav = write_clicks(tmp / "clicks.wav", CLICKS, duration_s=DURATION_S)
    G = tiny_generator()
    options = EngineOptions(preset=str(preset), audio_file=wav, output="none", headless=True,
                            osc_port=0, bank=tmp / "bank", record=tmp / "set")
    seen: dict = {}
    with EngineRun(options, generator=G, pixels=True) as run:
        wait_for_clock(run, 0.3)
        oscsend(run.osc_port, "/phosphene/clip/play", "s", "long")
        wait_for_clock(run, BLACKOUT_AT - 0.1)
        seen["playing_before"] = list(run.engine.clips.playing)
        wait_for_clock(run, BLACKOUT_AT)
        oscsend(run.osc_port, "/phosphene/blackout", "i", 1)
        seen["blackout_sent"] = time.monotonic()
        wait_for_clock(run, BLACKOUT_AT + 0.3)
        seen["playing_after"] = list(run.engine.clips.playing)
        wait_for_clock(run, BACK_AT)
        oscsend(run.osc_port, "/phosphene/blackout", "i", 0)
        seen["back_sent"] = time.monotonic()
        wait_for_clock(run, FREEZE_AT)
        seen["onsets_at_freeze"] = run.engine.counters.onsets
        oscsend(run.osc_port, "/phosphene/freeze")                 # no argument: toggles
        seen["freeze_sent"] = time.monotonic()
        wait_for_clock(run, FREEZE_AT + SETTLE_S)
        seen["generated_frozen"] = run.engine.worker.generated
        wait_for_clock(run, UNFREEZE_AT)
        seen["onsets_unfrozen"] = run.engine.counters.onsets
        seen["generated_unfrozen"] = run.engine.worker.generated
        oscsend(run.osc_port, "/phosphene/freeze", "i", 0)
        seen["unfreeze_sent"] = time.monotonic()
        report = run.wait()
    return tmp / "set", run.observed.frames, report, seen, G


def test_a_blackout_goes_black_within_a_fraction_of_a_second_stops_clips_and_comes_back(played):
    _, frames, report, seen, _ = played
    sent, back = seen["blackout_sent"], seen["back_sent"]
    before = [f for f in frames if f.presented_at < sent]
    assert before and np.mean([f.pixels.mean() for f in before[-10:]]) > 10

    first_black = next(f for f in frames if f.presented_at > sent and f.pixels.max() == 0)
    assert first_black.presented_at - sent < 0.6           # 0.2 s fade, a hop, a frame or two
    # black until it is brought back: every pixel 0, while the show goes on underneath
    dark = [f for f in frames if first_black.presented_at <= f.presented_at < back]
    assert len(dark) > 5 and all(f.pixels.max() == 0 for f in dark)
    assert dark[0].state.sample_index < dark[-1].state.sample_index
    assert all(f.state.blackout == 1.0 for f in dark)

    # the clip was playing; the blackout stopped it
    assert seen["playing_before"] == ["long"] and seen["playing_after"] == []
    assert report["clips"]["played"] == {"long": 1}

    # back: fading in (brightness rising), then the picture as before
    after = [f for f in frames if back < f.presented_at < seen["freeze_sent"]]
    fading = [f.pixels.mean() for f in after if 0 < f.state.blackout < 1]
    assert len(fading) >= 3 and fading[-1] > fading[0]
    settled = [f for f in after if f.presented_at > back + BLACKOUT_IN_S + 0.2]
    assert settled and all(f.state.blackout == 0.0 for f in settled)
    assert np.mean([f.pixels.mean() for f in settled]) > \
        0.5 * np.mean([f.pixels.mean() for f in before[-10:]])
    assert report["osc"]["accepted"]["/phosphene/blackout"] == 2
    assert report["final"]["blackout"] == 0.0 and report["final"]["frozen"] is False


def test_a_freeze_holds_the_pixels_while_onsets_are_still_heard_then_moves_again(played):
    _, frames, report, seen, _ = played
    held = [f for f in frames
            if seen["freeze_sent"] + SETTLE_S <= f.presented_at < seen["unfreeze_sent"]]
    assert len(held) > 10
    assert all(f.state.frozen for f in held)
    assert len({f.pixels.tobytes() for f in held}) == 1     # the very same picture
    # ... while the analysis went on: the clock and the onsets moved on, and the generator
    # was not asked for the held frame again
    assert held[-1].state.sample_index - held[0].state.sample_index > 0.5 * SR
    assert seen["onsets_unfrozen"] - seen["onsets_at_freeze"] >= 4    # clicks every 0.3 s
    assert seen["generated_unfrozen"] == seen["generated_frozen"]

    later = [f for f in frames if f.presented_at > seen["unfreeze_sent"] + 0.3]
    assert later and not any(f.state.frozen for f in later)
    assert len({f.pixels.tobytes() for f in later}) > len(later) // 3   # moving again
    assert report["osc"]["accepted"]["/phosphene/freeze"] == 2


def test_the_recorded_set_replays_blackout_and_freeze_frame_for_frame(played):
    directory, frames, _, _, G = played
    replay = LiveFrameReplay(directory, generator=G)
    differences = []
    for frame, again in zip(frames, replay.frames(), strict=True):
        assert again.state.sample_index == frame.state.sample_index
        assert (again.state.blackout, again.state.frozen) == \
            (frame.state.blackout, frame.state.frozen)
        differences.append(int(np.abs(again.pixels.astype(np.int16)
                                      - frame.pixels.astype(np.int16)).max()))
    assert max(differences) <= 1, differences
    assert any(f.state.frozen for f in frames) and any(f.state.blackout == 1.0 for f in frames)
