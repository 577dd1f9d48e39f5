"""The picture a performer tunes a preset with: what the analyzer heard, hop by hop.

Five stacked panels on one time axis: waveform with the gate; level and RMS; onset strength with
picked onsets; the three band envelopes; tempo with the beat grid. Onsets and beats are drawn at
the time they would fire live (the hop that flags them), so what you see is what the visuals get.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phosphene.live.analysis.file_analysis import FileAnalysis


def plot_analysis(result: FileAnalysis, out_path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.times_s
    sr = result.sample_rate
    onset_t = t[result.column("onset") > 0]
    beat_t = t[result.column("beat") > 0]
    gated = result.column("gated") > 0

    fig, axes = plt.subplots(5, 1, figsize=(14, 10), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1, 1.2, 1, 0.8]})
    fig.suptitle(f"{result.path.name} — {sr} Hz, hop {result.hop_length} "
                 f"({1000 * result.hop_length / sr:.1f} ms), analyzer latency "
                 f"{1000 * result.latency_samples / sr:.1f} ms, tempo "
                 f"{result.tempo_bpm:.1f} BPM", fontsize=11)

    ax = axes[0]
    # envelope of the waveform from each hop's min/max (the analysis keeps no signal), merged
    # into at most ~20000 columns: cheap to draw
    step = max(1, result.n_hops // 20000)
    n = result.n_hops // step * step
    if n:
        lo = result.wave_min[:n].reshape(-1, step).min(axis=1)
        hi = result.wave_max[:n].reshape(-1, step).max(axis=1)
        hop = result.hop_length
        tx = (np.arange(len(lo)) * step + step / 2) * hop / sr
        ax.fill_between(tx, lo, hi, color="0.35", lw=0)
    _shade(ax, t, gated, "gated (below noise floor)")
    ax.set_ylabel("waveform")
    ax.set_ylim(-1.05, 1.05)
    if np.any(gated):
        ax.legend(loc="upper right", fontsize=8)

    ax = axes[1]
    ax.plot(t, result.column("level"), color="tab:blue", lw=1, label="level (AGC, envelope)")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("level 0..1")
    ax2 = ax.twinx()
    rms = result.column("rms_dbfs")
    ax2.plot(t, np.where(np.isfinite(rms), rms, np.nan), color="tab:gray", lw=0.6, alpha=0.7,
             label="RMS dBFS")
    ax2.set_ylim(-90, 3)
    ax2.set_ylabel("dBFS")
    _legend(ax, ax2)

    ax = axes[2]
    ax.plot(t, result.column("onset_strength"), color="tab:orange", lw=0.8,
            label="onset strength")
    ax.vlines(onset_t, 0, 1.05, color="tab:red", lw=0.8, label=f"onsets ({len(onset_t)})")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("onsets")
    ax.legend(loc="upper right", fontsize=8)

    ax = axes[3]
    for name, colour in (("low", "tab:red"), ("mid", "tab:green"), ("high", "tab:blue")):
        ax.plot(t, result.column(name), color=colour, lw=0.9, label=name)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("bands 0..1")
    ax.legend(loc="upper right", fontsize=8, ncol=3)

    ax = axes[4]
    tempo = result.column("tempo_bpm")
    ax.plot(t, np.where(tempo > 0, tempo, np.nan), color="tab:purple", lw=1.2,
            label="tempo (BPM)")
    for bt in beat_t:
        ax.axvline(bt, color="0.6", lw=0.5)
    ax.set_ylabel("BPM")
    if np.any(tempo > 0):
        mid = float(np.median(tempo[tempo > 0]))
        ax.set_ylim(mid * 0.8, mid * 1.2)
    ax.set_xlabel("time (s) — onsets and beats drawn where they fire live")
    ax.legend(loc="upper right", fontsize=8)

    for ax in axes:
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def _shade(ax, t, mask, label):
    if not np.any(mask):
        return
    ax.fill_between(t, -1.05, 1.05, where=mask, color="tab:blue", alpha=0.08, lw=0,
                    step="pre", label=label)


def _legend(ax, ax2):
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)
