"""`phosphene bench onsets`: onset F-measure on an annotated corpus, beside reference detectors.

The corpus is a directory with an ``index.json`` (written by ``tools/make_onset_corpus.py``):
audio files, each with a MIREX-style annotation (onset times in seconds, one a line), a family,
a degradation and a split. Every file goes through the streaming analyzer exactly as ``phosphene
analyze`` and live input do (``analyze_file``: hop by hop, causal, one hop of lookahead), once
per onset detector asked for; its onsets are moved back by the analyzer's detection delay, as
``analyze`` prints them. The references see the same files: librosa's offline
``onset.onset_detect`` (defaults; it sees the whole file and may look ahead) and aubio's
default detector through its ``aubioonset`` CLI (Debian ``aubio-tools``), when installed.

Scores are mir_eval's onset F-measure, precision and recall at +-50 ms and +-25 ms, the mean
over files, per family, per degradation and per target group.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.bench import bench_audio
from phosphene.live.analysis.file_analysis import analyze_file
from phosphene.live.analysis.settings import AnalyzerSettings

WINDOWS_S = (0.05, 0.025)
# issue 15's target groups, used when the corpus's index names none
DEFAULT_GROUPS = {"percussive": ("drums", "piano", "plucked"), "mixed": ("band",),
                  "voice": ("voice",), "legato": ("bowed", "winds", "organ_pad")}


@dataclass(frozen=True)
class CorpusItem:
    audio: Path
    onsets: np.ndarray
    family: str
    degradation: str
    split: str
    piece: str


@dataclass(frozen=True)
class Corpus:
    root: Path
    items: list[CorpusItem]
    groups: dict[str, tuple[str, ...]]


def load_corpus(root: str | Path, split: str | None = "test") -> Corpus:
    """The items of ``root/index.json`` in ``split`` (None or "all": every split)."""
    root = Path(root)
    index_path = root / "index.json"
    if not index_path.is_file():
        raise PhospheneError(f"onset corpus {root}: no index.json there (make one with "
                             "tools/make_onset_corpus.py)")
    try:
        index = json.loads(index_path.read_text())
        items = []
        for entry in index["items"]:
            if split not in (None, "all") and entry["split"] != split:
                continue
            onsets = np.loadtxt(root / entry["onsets"], ndmin=1, dtype=float)
            items.append(CorpusItem(root / entry["audio"], np.sort(onsets), entry["family"],
                                    entry["degradation"], entry["split"], entry["piece"]))
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise PhospheneError(f"onset corpus {index_path}: unreadable ({exc})") from exc
    if not items:
        raise PhospheneError(f"onset corpus {root}: no files in split {split!r}")
    groups = {k: tuple(v) for k, v in index.get("groups", DEFAULT_GROUPS).items()}
    return Corpus(root, items, groups)


# -- detectors: each maps an audio file to onset times in seconds --------------------------------

def phosphene_detector(settings: AnalyzerSettings) -> Callable[[Path], np.ndarray]:
    return lambda path: analyze_file(path, settings).onset_times_s


def librosa_onsets(path: Path) -> np.ndarray:
    import librosa  # start-up time: librosa is slow to import and only this reference uses it

    y, sr = librosa.load(path, sr=None, mono=True)
    return librosa.onset.onset_detect(y=y, sr=sr, units="time")


def aubio_available() -> bool:
    return shutil.which("aubioonset") is not None


def aubio_onsets(path: Path) -> np.ndarray:
    out = subprocess.run(["aubioonset", "-i", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return np.array([float(v) for v in out.split()], dtype=float)


def detectors(names: Iterable[str]) -> dict[str, Callable[[Path], np.ndarray]]:
    """Detectors by name: ``phosphene:<onset_detector>`` (the analyzer with that setting),
    ``librosa``, ``aubio``."""
    out = {}
    for name in names:
        if name.startswith("phosphene:"):
            kind = name.split(":", 1)[1]
            try:
                out[name] = phosphene_detector(AnalyzerSettings(onset_detector=kind))
            except ValueError as exc:
                raise PhospheneError(f"bench onsets: unknown onset detector {kind!r}") from exc
        elif name == "librosa":
            out[name] = librosa_onsets
        elif name == "aubio":
            if not aubio_available():
                raise PhospheneError("bench onsets: aubio's aubioonset CLI is not installed "
                                     "(Debian aubio-tools)")
            out[name] = aubio_onsets
        else:
            raise PhospheneError(f"bench onsets: unknown detector {name!r}")
    return out


def default_detector_names() -> list[str]:
    kinds = get_args(AnalyzerSettings.model_fields["onset_detector"].annotation)
    names = [f"phosphene:{k}" for k in kinds] + ["librosa"]
    return names + (["aubio"] if aubio_available() else [])


# -- cost -----------------------------------------------------------------------------------------

def detector_cost(onset_detector: str, sample_rate: int = 48000, seconds: float = 10.0,
                  seed: int = 0) -> dict[str, float]:
    """Microseconds per hop, and share of one core at real time, of the onset detector alone
    (its flux and peak picker on the analyzer's magnitude spectra) and of the whole
    ``Analyzer.process`` with it, on a drum loop in noise (``bench.bench_audio``). CPU time of
    this process, not wall time: on a shared machine it is what the detector itself costs."""
    settings = AnalyzerSettings(onset_detector=onset_detector)
    x = bench_audio(sample_rate, seconds, seed)
    analyzer = Analyzer(sample_rate, settings)
    hop = analyzer.hop_length
    blocks = [x[i:i + hop] for i in range(0, len(x) - hop + 1, hop)]
    mags = []
    start = time.process_time()
    for block in blocks:
        analyzer.process(block)
        mags.append(analyzer._mag.copy())
    whole = (time.process_time() - start) / len(blocks)
    fresh = Analyzer(sample_rate, settings)
    flux = fresh._flux or fresh._accent_flux
    picker = fresh._picker
    start = time.process_time()
    for mag in mags:
        picker.process(flux.process(mag, 1.0))
    alone = (time.process_time() - start) / len(mags)
    hop_s = hop / sample_rate
    return {"detector_us": alone * 1e6, "detector_core_pct": 100 * alone / hop_s,
            "analyzer_us": whole * 1e6, "analyzer_core_pct": 100 * whole / hop_s}


def costs_of(names: list[str]) -> dict[str, dict[str, float]]:
    """``detector_cost`` of every phosphene detector among ``names``."""
    return {n: detector_cost(n.split(":", 1)[1]) for n in names if n.startswith("phosphene:")}


def format_cost(costs: dict[str, dict[str, float]]) -> str:
    lines = ["cost per 256-sample hop at 48 kHz (CPU time of this process)", "",
             "| onset detector | detector µs/hop | share of one core | whole analyzer µs/hop "
             "| share of one core |", "|---|---|---|---|---|"]
    for name, c in costs.items():
        lines.append(f"| {name} | {c['detector_us']:.1f} | {c['detector_core_pct']:.2f}% | "
                     f"{c['analyzer_us']:.1f} | {c['analyzer_core_pct']:.2f}% |")
    return "\n".join(lines)


# -- scoring --------------------------------------------------------------------------------------

def score(reference: np.ndarray, estimated: np.ndarray) -> dict[str, float]:
    """F, P, R at each of ``WINDOWS_S`` (keys ``f50``, ``p50``, ``r50``, ``f25`` ...)."""
    try:
        import mir_eval
    except ImportError as exc:  # a dev extra
        raise PhospheneError("bench onsets needs mir_eval (pip install -e '.[dev]')") from exc
    out = {}
    for window in WINDOWS_S:
        f, p, r = mir_eval.onset.f_measure(np.asarray(reference, float),
                                           np.asarray(estimated, float), window=window)
        ms = int(round(window * 1000))
        out.update({f"f{ms}": f, f"p{ms}": p, f"r{ms}": r})
    return out


def run_onset_bench(corpus: Corpus, names: list[str],
                    progress: Callable[[str], None] | None = None) -> list[dict]:
    """One row per (file, detector): the item's labels and its scores."""
    dets = detectors(names)
    rows = []
    for i, item in enumerate(corpus.items):
        for name, detect in dets.items():
            estimated = np.asarray(detect(item.audio), float)
            rows.append({"file": item.audio.name, "piece": item.piece, "family": item.family,
                         "degradation": item.degradation, "split": item.split,
                         "detector": name, "n_reference": len(item.onsets),
                         "n_detected": len(estimated), **score(item.onsets, estimated)})
        if progress:
            progress(f"[{i + 1}/{len(corpus.items)}] {item.audio.name}")
    return rows


def summarise(rows: list[dict], key: str, groups: dict[str, tuple[str, ...]] | None = None
              ) -> dict[str, dict[str, dict[str, float]]]:
    """``{label: {detector: {metric: mean over files, "files": n}}}`` by ``key`` ("family",
    "degradation", or "group" with ``groups`` mapping a group to its families)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        if key == "group":
            labels = [g for g, fams in (groups or {}).items() if row["family"] in fams]
        else:
            labels = [row[key]]
        for label in labels + ["all"]:
            out.setdefault(label, {}).setdefault(row["detector"], []).append(row)
    metrics = [f"{m}{int(round(w * 1000))}" for w in WINDOWS_S for m in "fpr"]
    out["all"] = out.pop("all")  # the overall row last
    return {label: {det: {**{m: float(np.mean([r[m] for r in rs])) for m in metrics},
                          "files": len(rs)} for det, rs in by_det.items()}
            for label, by_det in out.items()}


def format_table(summary: dict, title: str, detector_names: list[str]) -> str:
    head = f"| {title} | files |" + "".join(
        f" {d} F50 | P50 | R50 | F25 |" for d in detector_names)
    lines = [head, "|" + "---|" * (2 + 4 * len(detector_names))]
    for label, by_det in summary.items():
        files = next(iter(by_det.values()))["files"]
        cells = "".join(
            f" **{s['f50']:.3f}** | {s['p50']:.3f} | {s['r50']:.3f} | {s['f25']:.3f} |"
            if (s := by_det.get(d)) else " – | – | – | – |" for d in detector_names)
        lines.append(f"| {label} | {files} |{cells}")
    return "\n".join(lines)


def format_report(rows: list[dict], corpus: Corpus, detector_names: list[str]) -> str:
    parts = [f"onset F-measure (mir_eval, mean over files) on {corpus.root} "
             f"({len(corpus.items)} files); phosphene = the streaming analyzer, causal, "
             "as `phosphene analyze`; librosa = onset_detect offline, defaults; aubio = "
             "aubioonset, defaults"]
    for key, title in (("group", "target group"), ("family", "family"),
                       ("degradation", "degradation")):
        parts += ["", format_table(summarise(rows, key, corpus.groups), title,
                                   detector_names)]
    return "\n".join(parts)
