"""The age of analysed audio (report and /phosphene/status): a bounded histogram whose figures
match the ages it was given."""

from __future__ import annotations

import numpy as np
import pytest

from phosphene.live.runtime.report import AudioAge


def test_percentiles_and_late_hops_match_the_ages_given():
    rng = np.random.default_rng(3)
    ages_s = np.concatenate([rng.uniform(0.001, 0.020, 9_900), rng.uniform(0.06, 0.4, 100)])
    rng.shuffle(ages_s)
    age = AudioAge()
    for a in ages_s:
        age.add(float(a))
    summary = age.summary()
    assert summary["hops"] == len(ages_s)
    assert summary["older_than_50ms"] == int(np.sum(ages_s > 0.050))
    # whole-millisecond bins, nearest rank: within 1 ms of numpy's percentile of that kind
    for q in (50, 99):
        exact = 1000 * np.percentile(ages_s, q, method="lower")
        assert summary[f"p{q}_ms"] == pytest.approx(exact, abs=1.0)
    assert summary["max_ms"] == pytest.approx(1000 * ages_s.max(), abs=0.01)
    assert age.newest_s == pytest.approx(ages_s[-1])


def test_an_empty_run_and_absurd_ages_stay_bounded():
    age = AudioAge()
    assert age.summary() == {"p50_ms": None, "p99_ms": None, "max_ms": None, "hops": 0,
                             "older_than_50ms": 0}
    age.add(-0.5)                    # a clock step backwards counts as fresh, not negative
    age.add(3600.0)                  # an hour: the last bin, the max kept exactly
    assert age.summary()["max_ms"] == 3_600_000.0
    assert age.percentile_ms(100) == AudioAge.MAX_MS + 0.5
    assert age._counts.size == AudioAge.MAX_MS + 1      # memory does not grow with the run
