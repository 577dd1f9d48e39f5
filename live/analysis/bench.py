"""`phosphene bench analyzer`: what one hop of analysis costs on this machine.

Per-hop time of the streaming analyzer at 256- and 512-sample hops (48 kHz by default), as a
share of one CPU core at real time, beside the cost of librosa's (offline, vectorised)
``onset_strength`` over the same audio, as a reference point.
"""

from __future__ import annotations

import platform
import time

import numpy as np

from phosphene.live.analysis.analyzer import Analyzer, fft_size_for
from phosphene.live.analysis.settings import AnalyzerSettings


def bench_audio(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A drum loop in light noise: representative spectral content for the analyzer."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    x = rng.normal(0.0, 0.01, n)
    beat = int(0.5 * sample_rate)
    t = np.arange(int(0.2 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 15)
    hat = rng.normal(0, 0.3, len(t)) * np.exp(-t * 60)
    for start in range(0, n - len(t), beat):
        x[start:start + len(t)] += 0.6 * kick
        x[start + beat // 2:start + beat // 2 + len(t)] += hat[:max(0, n - start - beat // 2)]
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def time_analyzer(x: np.ndarray, sample_rate: int, hop_length: int) -> float:
    """Mean microseconds per hop of ``Analyzer.process`` over ``x``."""
    analyzer = Analyzer(sample_rate, AnalyzerSettings(hop_length=hop_length))
    n_hops = len(x) // hop_length
    blocks = [x[i * hop_length:(i + 1) * hop_length] for i in range(n_hops)]
    for block in blocks[:50]:  # warm-up: first-call costs, caches
        analyzer.process(block)
    start = time.perf_counter()
    for block in blocks:
        analyzer.process(block)
    return (time.perf_counter() - start) / n_hops * 1e6


def time_librosa_onset_strength(x: np.ndarray, sample_rate: int, hop_length: int,
                                n_fft: int) -> float:
    """Microseconds per hop of librosa.onset.onset_strength over the whole signal."""
    import librosa

    librosa.onset.onset_strength(y=x[:sample_rate], sr=sample_rate, hop_length=hop_length,
                                 n_fft=n_fft)  # warm-up (numba/JIT, filterbank caches)
    start = time.perf_counter()
    librosa.onset.onset_strength(y=x, sr=sample_rate, hop_length=hop_length, n_fft=n_fft)
    return (time.perf_counter() - start) / (len(x) // hop_length) * 1e6


def run_bench(sample_rate: int = 48000, seconds: float = 20.0,
              hops: tuple[int, ...] = (256, 512)) -> list[dict]:
    x = bench_audio(sample_rate, seconds)
    n_fft = fft_size_for(AnalyzerSettings().window_ms, sample_rate)
    rows = []
    for hop in hops:
        hop_us = hop / sample_rate * 1e6
        ours = time_analyzer(x, sample_rate, hop)
        ref = time_librosa_onset_strength(x, sample_rate, hop, n_fft)
        rows.append({"hop": hop, "hop_ms": hop_us / 1000, "analyzer_us": ours,
                     "analyzer_core_pct": 100 * ours / hop_us, "librosa_us": ref,
                     "librosa_core_pct": 100 * ref / hop_us})
    return rows


def format_table(rows: list[dict], sample_rate: int, seconds: float) -> str:
    lines = [f"analyzer cost at {sample_rate} Hz over {seconds:g} s of audio "
             f"({platform.machine()}, {platform.python_implementation()} "
             f"{platform.python_version()}, numpy {np.__version__})",
             "",
             "| hop (samples) | hop (ms) | phosphene Analyzer.process (µs/hop) | share of one "
             "core | librosa onset_strength, offline (µs/hop) | share of one core |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['hop']} | {r['hop_ms']:.2f} | {r['analyzer_us']:.1f} | "
                     f"{r['analyzer_core_pct']:.2f}% | {r['librosa_us']:.1f} | "
                     f"{r['librosa_core_pct']:.2f}% |")
    return "\n".join(lines)
