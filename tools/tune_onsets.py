#!/usr/bin/env python3
"""Tune the analyzer's superflux onset detector on the onset corpus's training split.

    .venv/bin/python tools/tune_onsets.py CORPUS [--check validation]

The expensive part -- the analyzer's framing, AGC gain and gate -- runs once per file through
the real ``Analyzer`` and records, per hop, each candidate filterbank's output (already
multiplied by the AGC gain) and the gate. The flux (log compression, the SuperFlux maximum
filter, the difference ``mu`` hops back) and the causal peak picker are then replayed with
numpy for every setting tried, the same arithmetic as ``onsets.py``. Coordinate descent over
the knobs maximises the mean F-measure (+-50 ms) over issue 15's four target groups (each
group's mean over its files), so no family dominates; the winner is printed (``filterbank``
``mel80`` is ``bands_per_octave: 0``, ``oct24`` is 24) and scored on ``--check``
(validation) beside the starting point and the classic path.

The shipped ``ONSET_DETECTOR_DEFAULTS["superflux"]`` came from a first run from START, a second
run from its winner (``--start '{"filterbank": "mel80", "log_multiplier": 1000.0, ...}'``), and
one change checked on both splits: lambda 1e3 with delta 0.08 instead of the second run's 1e4
and 0.12 (as good on validation, and steadier on noisy speech-like material; see settings.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mir_eval
import numpy as np
from scipy.ndimage import maximum_filter1d

from phosphene.audio_file import AudioFileStream
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.onset_bench import load_corpus
from phosphene.live.analysis.onsets import log_filterbank, octave_filterbank
from phosphene.live.analysis.settings import AnalyzerSettings

GRID = {
    "filterbank": ["oct24", "mel80"],
    "log_multiplier": [1.0, 10.0, 100.0, 1000.0, 1e4, 1e5],
    "max_filter_bands": [1, 3, 5],
    "diff_ratio": [0.0, 0.25, 0.5, 0.75],
    "delta": [0.0, 0.01, 0.02, 0.03, 0.05, 0.065, 0.08, 0.1, 0.12, 0.16, 0.2],
    "mean_weight": [1.0, 1.1, 1.25, 1.5, 2.0, 3.0],
    "mean_ms": [50.0, 100.0, 150.0, 250.0],
    "max_ms": [10.0, 20.0, 30.0, 50.0],
    "min_interval_ms": [30.0, 50.0, 80.0],
}
START = {"filterbank": "oct24", "log_multiplier": 100.0, "max_filter_bands": 3,
         "diff_ratio": 0.5, "delta": 0.05, "mean_weight": 1.0, "mean_ms": 100.0,
         "max_ms": 30.0, "min_interval_ms": 50.0}


def record(path: Path):
    """Per hop: each filterbank's output times the AGC gain, and whether the gate was shut --
    the analyzer's own framing, DC blocker, gate and AGC objects, vectorised where they are
    not recursive (the bench then checks the tuned detector through the real analyzer)."""
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy.signal import lfilter

    from phosphene.audio_file import sanitize_audio
    from phosphene.live.analysis.analyzer import power_db

    with AudioFileStream(path) as stream:
        analyzer = Analyzer(stream.sample_rate, AnalyzerSettings(onset_detector="classic"))
        hop = analyzer.hop_length
        x = np.concatenate(list(stream.mono_hops(hop))).astype(np.float64)
    s, sr, n_fft = analyzer.settings, analyzer.sample_rate, analyzer.n_fft
    x = sanitize_audio(x)
    if analyzer._dc_b is not None:
        x = lfilter(analyzer._dc_b, analyzer._dc_a, x)
    n_hops = len(x) // hop
    power = (x[:n_hops * hop].reshape(n_hops, hop) ** 2).mean(axis=1)
    padded = np.concatenate([np.zeros(n_fft - hop), x[:n_hops * hop]])
    frames = sliding_window_view(padded, n_fft)[::hop][:n_hops]
    mag = np.abs(np.fft.rfft(frames * analyzer._window, axis=1))
    gain, gated, open_ = np.ones(n_hops), np.zeros(n_hops, bool), False
    for j in range(n_hops):
        db = power_db(float(power[j]))
        open_ = db >= (s.gate_dbfs - s.gate_hysteresis_db if open_ else s.gate_dbfs)
        gated[j] = not open_
        g_db = analyzer._agc.gain_db if gated[j] else analyzer._agc.update(db)
        gain[j] = 10.0 ** (g_db / 20.0)
    banks = {"oct24": octave_filterbank(sr, n_fft, 24, 30.0, 16000.0),
             "mel80": log_filterbank(sr, n_fft, 80, 30.0, 16000.0)}
    out = {k: (mag @ fb.T) * gain[:, None] for k, fb in banks.items()}
    delay_s = analyzer.onset_delay_samples / sr
    return out, gated, analyzer.frame_rate, hop / sr, delay_s, n_fft, hop


def odf(rec, p):
    bands, gated, _, _, _, n_fft, hop = rec
    logb = np.log1p(bands[p["filterbank"]] * p["log_multiplier"])
    mu = max(1, int(round(n_fft * (1.0 - p["diff_ratio"]) / hop)))
    ref = maximum_filter1d(logb, p["max_filter_bands"], axis=1, mode="nearest")
    diff = np.zeros_like(logb)
    diff[mu:] = np.maximum(logb[mu:] - ref[:-mu], 0.0)
    diff[:mu] = np.maximum(logb[:mu], 0.0)  # the reference starts as zeros
    flux = diff.mean(axis=1)
    flux[gated] = 0.0
    return flux


def pick(flux, rec, p):
    """OnlinePeakPicker, replayed: candidate i is decided at hop i + 1."""
    _, _, rate, hop_s, delay_s, _, _ = rec
    frames = lambda ms: max(1, int(round(ms / 1000.0 * rate)))  # noqa: E731
    mean_n, max_n, gap = frames(p["mean_ms"]), frames(p["max_ms"]), frames(p["min_interval_ms"])
    x = np.concatenate([np.zeros(max(mean_n, max_n) + 2), flux])
    pad = max(mean_n, max_n) + 2
    c = np.cumsum(np.concatenate([[0.0], x]))
    idx = np.arange(pad, len(x) - 1)
    cand = x[idx]
    ok = (cand >= x[idx + 1]) & (cand > 0) & (idx - pad >= 1)
    mean = (c[idx + 1] - c[idx + 1 - mean_n]) / mean_n
    ok &= cand >= p["mean_weight"] * mean + p["delta"]
    from numpy.lib.stride_tricks import sliding_window_view
    win = sliding_window_view(x, max_n)[idx - max_n + 1]
    ok &= cand >= win.max(axis=1)
    times, last = [], -10 ** 9
    for i in (idx[ok] - pad):
        if i - last >= gap:
            times.append(i)
            last = i
    # candidate i is flagged by the frame of hop i + 1, stamped at its end: (i + 2) hops
    return np.maximum((np.array(times) + 2) * hop_s - delay_s, 0.0)


def evaluate(data, p, cache):
    key = (p["filterbank"], p["log_multiplier"], p["max_filter_bands"], p["diff_ratio"])
    per_group = {}
    for n, (item, rec, group) in enumerate(data):
        if (key, n) not in cache:
            cache[(key, n)] = odf(rec, p)
        est = pick(cache[(key, n)], rec, p)
        f = mir_eval.onset.f_measure(item.onsets, est, window=0.05)[0]
        per_group.setdefault(group, []).append(f)
    groups = {g: float(np.mean(v)) for g, v in per_group.items()}
    return float(np.mean(list(groups.values()))), groups


def load(corpus_dir, split):
    corpus = load_corpus(corpus_dir, split)
    group_of = {f: g for g, fams in corpus.groups.items() for f in fams}
    data = []
    for i, item in enumerate(corpus.items):
        data.append((item, record(item.audio), group_of.get(item.family, "other")))
        print(f"\rrecorded {i + 1}/{len(corpus.items)} ({split})", end="", file=sys.stderr)
    print(file=sys.stderr)
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--split", default="train")
    ap.add_argument("--check", default="validation")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--start", type=json.loads, default={}, metavar="JSON",
                    help="knobs to start from (default: START, the classic values)")
    args = ap.parse_args(argv)
    data, cache = load(args.corpus, args.split), {}
    best = dict(START, **args.start)
    score, groups = evaluate(data, best, cache)
    print(f"start {score:.4f} {groups}")
    for _ in range(args.passes):
        for name, values in GRID.items():
            for v in values:
                trial = dict(best, **{name: v})
                s, g = evaluate(data, trial, cache)
                if s > score + 1e-4:
                    best, score, groups = trial, s, g
                    print(f"{name}={v}: {score:.4f} {groups}", flush=True)
    print(f"best on {args.split}: {score:.4f} {groups}\n{best}")
    check = load(args.corpus, args.check)
    for label, p in (("tuned", best), ("start", START),
                     ("classic", dict(START, filterbank="mel80"))):
        s, g = evaluate(check, p, {})
        print(f"{args.check} {label}: {s:.4f} {g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
