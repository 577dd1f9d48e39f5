"""The display's budget (CPU fairness): while the generator is behind, the display takes at most
its share of the time, then draws smaller; when the generator keeps up again it steps back."""

from __future__ import annotations

import pytest

from phosphene.live.runtime.governor import DisplayGovernor


def run(governor, seconds, draw_s, gan_age_s, t0=0.0):
    """Feed the governor frames as a display loop would; returns (end time, periods)."""
    t, periods = t0, []
    while t < t0 + seconds:
        period = governor.after_frame(t + draw_s, draw_s, gan_age_s)
        periods.append(period)
        t += max(period, draw_s)
    return t, periods


def test_a_cheap_display_with_a_generator_that_keeps_up_runs_at_its_own_rate():
    g = DisplayGovernor(1 / 60)
    _, periods = run(g, 5.0, draw_s=0.002, gan_age_s=0.05)
    assert periods == [pytest.approx(1 / 60)] * len(periods)
    assert g.scale == 1.0 and g.summary()["throttled_frames"] == 0


def test_an_expensive_display_yields_half_the_time_then_draws_smaller_while_behind():
    g = DisplayGovernor(1 / 60)
    t, periods = run(g, 1.0, draw_s=0.120, gan_age_s=2.0)
    # the display never takes more than half the wall time
    assert all(p >= 2 * 0.12 * 0.99 for p in periods[3:])
    # 1 / 0.24 s is about 4 fps, below the floor: the canvas steps down (held 2 s between steps)
    assert g.scale < 1.0 and g.scale_changes == 1
    run(g, 10.0, draw_s=0.120 * g.scale ** 2, gan_age_s=2.0, t0=t)
    assert g.scale_changes >= 2 and g.scale >= g.min_scale
    assert g.summary()["generator_behind_s"] > 5.0


def test_the_scale_comes_back_when_the_generator_keeps_up():
    g = DisplayGovernor(1 / 60)
    t, _ = run(g, 3.0, draw_s=0.120, gan_age_s=2.0)
    low = g.scale
    assert low < 1.0
    t, _ = run(g, 30.0, draw_s=0.01, gan_age_s=0.05, t0=t)
    assert g.scale == 1.0 and g.lowest_scale == low


def test_scaled_sizes_are_even_and_not_tiny():
    g = DisplayGovernor(1 / 60, scale=0.25)
    assert g.scaled((1024, 1024)) == (256, 256)
    assert g.scaled((50, 30)) == (16, 16)
    assert all(side % 2 == 0 for side in DisplayGovernor(1 / 60, scale=0.7071).scaled((1280, 720)))


def test_a_generator_making_too_few_frames_counts_as_behind():
    """Fresh frames (a small age) but only 3 a second: the display yields all the same."""
    g = DisplayGovernor(1 / 60)
    t, generated = 0.0, 0
    for _ in range(200):
        t += 0.05
        generated = int(t * 3)
        g.after_frame(t, 0.04, 0.05, generated)
    assert g.generator_fps == pytest.approx(3.0, abs=1.0)
    assert g.behind and g.throttled_frames > 0
    fast = DisplayGovernor(1 / 60)
    t = 0.0
    for _ in range(200):
        t += 0.02
        fast.after_frame(t, 0.002, 0.05, int(t * 60))
    assert not fast.behind and fast.throttled_frames == 0
