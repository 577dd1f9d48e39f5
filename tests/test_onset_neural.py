"""The neural onset detector (live/analysis/neural_onsets.py): its numpy inference is the
training script's torch forward, its shipped weights detect onsets on the committed corpus
subset, file analysis and live hop-by-hop runs agree, and wrong settings are named."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from phosphene.errors import PhospheneError
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.file_analysis import analyze_file
from phosphene.live.analysis.neural_onsets import (WEIGHTS_PATH, NeuralOnsets, front_end,
                                                   load_weights, sequence_features)
from phosphene.live.analysis.onset_bench import load_corpus, score
from phosphene.live.analysis.settings import AnalyzerSettings
from tool_scripts import tool_module

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "tests" / "data" / "onsets"
NEURAL = AnalyzerSettings(onset_detector="neural")

# F-measure (+-50 ms) of the shipped weights on the committed subset, measured when they were
# trained (mean 0.795; superflux there: 1.0, 0.769, 0.667, 0.957, 0.571, 0.615, mean 0.763).
# Each floor sits ~0.1 under the measured value, the mean ~0.05 under: random or untrained
# weights, a broken front end or a wrong threshold fall below, a last-digit change in
# numerics does not.
SUBSET_MEASURED = {"drums": 0.957, "band": 0.71, "piano": 1.0, "plucked": 1.0, "voice": 0.5,
                   "bowed": 0.6}
SUBSET_FILE_F_FLOOR = {k: round(v - 0.1, 2) for k, v in SUBSET_MEASURED.items()}
SUBSET_MEAN_F_FLOOR = 0.74


def train_tool():
    return tool_module("train_onset_net")


def analyzer_spectra(path, settings=NEURAL):
    """Per hop: the analyzer's magnitude spectrum, as the detector sees it."""
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    analyzer = Analyzer(sr, settings)
    hop = analyzer.hop_length
    mags = []
    for i in range(0, len(x) - hop + 1, hop):
        analyzer.process(x[i:i + hop].mean(axis=1))
        mags.append(analyzer._mag.copy())
    return sr, analyzer.n_fft, np.array(mags)


def test_numpy_inference_hop_by_hop_matches_the_torch_training_forward():
    weights = load_weights()
    item = next(i for i in load_corpus(SUBSET, split=None).items if i.family == "band")
    sr, n_fft, mags = analyzer_spectra(item.audio)
    rng = np.random.default_rng(0)
    gains = 10.0 ** rng.uniform(-1.0, 1.0, len(mags))  # the AGC gain moves; so must the input

    recorder, detector = NeuralOnsets(sr, n_fft, weights), NeuralOnsets(sr, n_fft, weights)
    feats = np.array([recorder.features(m, g).copy() for m, g in zip(mags, gains)])
    act = np.array([detector.process(m, g) for m, g in zip(mags, gains)])

    # the per-hop features are the whole-sequence ones the net was trained on
    fe = front_end(weights)
    bands = (mags @ detector.filterbank.T) * gains[:, None]
    np.testing.assert_allclose(feats, sequence_features(bands, fe["log_multiplier"],
                                                        fe["long_lag"]), rtol=1e-12, atol=1e-12)
    # and the activation is the torch forward's over the whole sequence at once
    net = train_tool().OnsetNet.from_arrays(weights).double().eval()
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(feats)[None]))[0].numpy()
    assert np.abs(act - expected).max() < 1e-5
    assert act.max() > 0.5 and act.min() < 0.1  # it does fire, and is quiet between onsets


def test_shipped_neural_detector_f_measure_on_the_committed_subset_stays_above_its_floor():
    scores = {}
    for item in load_corpus(SUBSET, split=None).items:
        onsets = analyze_file(item.audio, NEURAL).onset_times_s
        scores[item.family] = score(item.onsets, onsets)["f50"]
    for family, f in scores.items():
        assert f >= SUBSET_FILE_F_FLOOR[family], (family, f, scores)
    assert np.mean(list(scores.values())) >= SUBSET_MEAN_F_FLOOR, scores


def test_file_analysis_and_a_live_hop_by_hop_run_flag_the_same_frames():
    item = next(i for i in load_corpus(SUBSET, split=None).items if i.family == "piano")
    offline = analyze_file(item.audio, NEURAL)
    odd_reads = analyze_file(item.audio, NEURAL, block_frames=1000)  # reads not hop-aligned
    x, sr = sf.read(item.audio, dtype="float32", always_2d=True)
    live = Analyzer(sr, NEURAL)
    hop = live.hop_length
    flags, strength = [], []
    for i in range(0, len(x) - hop + 1, hop):  # as AudioIn hands hops over
        frame = live.process(x[i:i + hop].mean(axis=1))
        flags.append(frame.onset)
        strength.append(frame.onset_strength)
    n = len(flags)  # the file reader also pads the last partial hop; live has whole hops
    assert offline.columns["onset"].sum() >= 10 and len(offline.columns["onset"]) - n <= 1
    np.testing.assert_array_equal(offline.columns["onset"][:n], np.array(flags))
    np.testing.assert_array_equal(offline.columns["onset"], odd_reads.columns["onset"])
    np.testing.assert_allclose(offline.column("onset_strength")[:n], strength, rtol=0,
                               atol=1e-12)


def test_bad_detector_settings_and_weights_are_named(tmp_path):
    with pytest.raises(ValueError, match="onset_detector"):
        AnalyzerSettings(onset_detector="neuronal")
    with pytest.raises(ValueError, match="onset_log_multiplier.*neural"):
        AnalyzerSettings(onset_detector="neural", onset_log_multiplier=100.0)
    # the picker knobs do apply: onset_delta is the activation threshold
    assert AnalyzerSettings(onset_detector="neural", onset_delta=0.9).onset_params()["delta"] \
        == 0.9
    broken = tmp_path / "net.npz"
    broken.write_bytes(b"not an npz")
    with pytest.raises(PhospheneError, match="neural onset detector.*net.npz"):
        load_weights(broken)
    partial = tmp_path / "partial.npz"
    np.savez(partial, in_mean=np.zeros(3))
    with pytest.raises(PhospheneError, match="lack"):
        load_weights(partial)


def test_the_weights_ship_with_the_package():
    from source_tree import package_dirs, setup_cfg

    assert WEIGHTS_PATH.is_file() and WEIGHTS_PATH.stat().st_size < 400_000
    folder = package_dirs()["phosphene.live"] / "analysis"
    assert WEIGHTS_PATH.parent.resolve() == folder.resolve()
    patterns = setup_cfg()["options.package_data"].get("phosphene.live.analysis", "")
    assert WEIGHTS_PATH.name in patterns.replace(",", " ").split()


def test_bench_onsets_reports_the_neural_detector_and_its_cost(capsys):
    from phosphene.cli import main
    from phosphene.live.analysis.onset_bench import default_detector_names

    assert "phosphene:neural" in default_detector_names()
    code = main(["bench", "onsets", "--corpus", str(SUBSET), "--split", "all",
                 "--detectors", "phosphene:neural", "phosphene:superflux"])
    assert code == 0
    out = capsys.readouterr().out
    assert "phosphene:neural F50" in out and "phosphene:superflux F50" in out
    cost_rows = [line for line in out.splitlines() if line.startswith("| phosphene:")]
    assert {row.split("|")[1].strip() for row in cost_rows} == {"phosphene:neural",
                                                                "phosphene:superflux"}
