"""`phosphene analyze` and `phosphene bench analyzer` as a user runs them."""

import json
import os
import subprocess
import sys

import av
import mir_eval
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import synth_audio as S

SR = S.SR


def phosphene(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "phosphene", *args], capture_output=True,
                            text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def clicks_wav(tmp_path_factory):
    x, times = S.click_track(120, 8)
    path = tmp_path_factory.mktemp("audio") / "clicks.wav"
    sf.write(path, np.stack([x, x], axis=1), SR)  # stereo: exercises the mixdown
    return path, times


def test_onsets_one_per_line(clicks_wav):
    path, times = clicks_wav
    out = phosphene("analyze", str(path), "--onsets").stdout
    onsets = np.array([float(line) for line in out.split()])
    assert mir_eval.onset.f_measure(times, onsets, window=0.05)[0] >= 0.95


def test_beats_and_tempo(clicks_wav):
    path, times = clicks_wav
    lines = phosphene("analyze", str(path), "--beats").stdout.splitlines()
    assert lines[0].startswith("# tempo ")
    assert float(lines[0].split()[2]) == pytest.approx(120, rel=0.02)
    beats = np.array([float(x) for x in lines[1:]])
    assert len(beats) >= 6
    late = beats[beats > 5]
    assert np.all(np.min(np.abs(late[:, None] - times[None, :]), axis=1) < 0.05)


def test_json_and_feature_table(clicks_wav):
    path, times = clicks_wav
    doc = json.loads(phosphene("analyze", str(path), "--json").stdout)
    assert doc["sample_rate"] == SR and doc["hop_length"] == 256
    assert len(doc["onsets"]) == len(times)
    frames = doc["frames"]
    assert len(frames) == -(-8 * SR // 256)
    assert {"time_s", "level", "onset", "low", "mid", "high", "tempo_bpm", "beat_phase",
            "centroid_hz", "flatness", "rms_dbfs", "gated"} <= set(frames[0])
    assert sum(f["onset"] for f in frames) == len(times)
    table = phosphene("analyze", str(path), "--features").stdout.splitlines()
    header = table[0].split("\t")
    assert header[0] == "time_s" and "onset_strength" in header
    assert len(table) - 1 == len(frames)
    onset_col = header.index("onset")
    assert sum(int(row.split("\t")[onset_col]) for row in table[1:]) == len(times)


def test_plot_png(clicks_wav, tmp_path):
    path, _ = clicks_wav
    png = tmp_path / "analysis.png"
    result = phosphene("analyze", str(path), "--plot", str(png))
    assert png.is_file()
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert image.shape[1] >= 1000 and image.shape[0] >= 700
    red = (image[..., 0] > 180) & (image[..., 1] < 80) & (image[..., 2] < 80)
    assert red.sum() > 200  # the onset markers are drawn
    assert "wrote" in result.stderr


def test_mp3_through_pyav(tmp_path):
    x, times = S.click_track(100, 5)
    path = tmp_path / "clicks.mp3"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mp3", rate=SR)
        stream.layout = "mono"
        frame_size = 1152
        for i in range(0, len(x), frame_size):
            chunk = x[i:i + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = SR
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    onsets = np.array([float(v) for v in phosphene("analyze", str(path), "--onsets").stdout.split()])
    # MP3 adds an encoder delay of a few ms: still within the window
    assert mir_eval.onset.f_measure(times, onsets, window=0.05)[0] >= 0.9


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"this is not audio at all" * 10), "cannot read audio file"),
    (lambda p: p.write_bytes(b""), "cannot read audio file"),
    (lambda p: sf.write(p, np.zeros((0, 1), np.float32), SR), "contains no samples"),
])
def test_bad_files_are_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    result = phosphene("analyze", str(path), "--onsets", check=False)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_file(tmp_path):
    result = phosphene("analyze", str(tmp_path / "nope.wav"), check=False)
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_zero_channel_audio_is_refused(tmp_path):
    from phosphene.errors import PhospheneError
    from phosphene.audio_file import to_mono

    # libsndfile cannot even write a 0-channel file; the check guards decoders that yield one
    with pytest.raises(PhospheneError, match="channel 0 does not exist"):
        to_mono(np.zeros((100, 0), np.float32), channel=0)
    empty = tmp_path / "nochan.raw.wav"
    empty.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x00\x00"
                      b"\x80\xbb\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00data\x00\x00\x00\x00")
    result = phosphene("analyze", str(empty), check=False)
    assert result.returncode == 1 and "phosphene: error:" in result.stderr


def test_eight_channel_file_mixdown_and_channel_choice(tmp_path):
    x, times = S.click_track(120, 5)
    channels = np.zeros((len(x), 8), np.float32)
    channels[:, 5] = x  # only channel 5 carries the clicks
    path = tmp_path / "eight.wav"
    sf.write(path, channels, SR)
    picked = np.array([float(v) for v in
                       phosphene("analyze", str(path), "--onsets", "--channel", "5").stdout.split()])
    assert mir_eval.onset.f_measure(times, picked, window=0.05)[0] >= 0.95
    mixed = np.array([float(v) for v in phosphene("analyze", str(path), "--onsets").stdout.split()])
    assert mir_eval.onset.f_measure(times, mixed, window=0.05)[0] >= 0.95  # AGC makes up 18 dB
    result = phosphene("analyze", str(path), "--channel", "8", check=False)
    assert result.returncode == 1 and "channel 8 does not exist" in result.stderr


@pytest.mark.parametrize("rate", [8000, 192000])
def test_unusual_rates_from_files(tmp_path, rate):
    x, times = S.click_track(120, 5, sr=rate)
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, x, rate)
    doc = json.loads(phosphene("analyze", str(path), "--json", "--onsets").stdout)
    assert doc["sample_rate"] == rate
    assert mir_eval.onset.f_measure(times, np.array(doc["onsets"]), window=0.05)[0] >= 0.9


def test_bench_analyzer_prints_a_table():
    out = phosphene("bench", "analyzer", "--seconds", "2").stdout
    rows = [line for line in out.splitlines() if line.startswith("| 256 |")
            or line.startswith("| 512 |")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and cells[3].endswith("%") and float(cells[4]) > 0
