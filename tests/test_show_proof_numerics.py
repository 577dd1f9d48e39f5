"""Issue 11, numerics: nothing in the audio ends or silently breaks the show.

Digital silence after sound (defect 1), NaN/inf in a file (defect 5), an unwritable output
(defect 5) and a long file's memory (defect 11), each with the exact input from the issue.
"""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from phosphene.audio_file import AudioFileStream, load_audio, sanitize_audio
from phosphene.cli import main
from phosphene.errors import PhospheneError
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.file_analysis import FLAG_FIELDS, NUMERIC_FIELDS, analyze_file
from phosphene.live.audio.file_source import FileSource
from phosphene.live.runtime import offline
from phosphene.render.video import VideoWriter

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.flac"
RENDER = ["--size", "64x64", "--fps", "10", "--no-progress", "--batch", "2"]


def demo_seconds(seconds: float) -> tuple[np.ndarray, int]:
    x, sr = sf.read(DEMO, dtype="float32")
    return x[:int(seconds * sr)], sr


def run_hops(analyzer: Analyzer, x: np.ndarray) -> list:
    hop = analyzer.hop_length
    x = np.concatenate([x, np.zeros(-len(x) % hop, x.dtype)])
    return [analyzer.process(x[i:i + hop]) for i in range(0, len(x), hop)]


def music_then_silence(silence_s: float, after_s: float = 2.0) -> tuple[np.ndarray, int]:
    """The issue's sox material: 10 s of the demo twice, then digital silence, then music.
    (`sox m.wav b.wav m.wav s.wav` with b = m padded by 8 s; it died 5.8 s into the
    silence.)"""
    m, sr = demo_seconds(10)
    return np.concatenate([m, m, np.zeros(int(silence_s * sr), np.float32),
                           m[:int(after_s * sr)]]), sr


def finite_features(frame) -> bool:
    return bool(np.isfinite([frame.level, frame.onset_strength, frame.low, frame.mid,
                             frame.high, frame.centroid_hz, frame.flatness, frame.tempo_bpm,
                             frame.beat_phase]).all())


def broken_clicks(path: Path, sr: int = 22050, seconds: float = 3.0) -> Path:
    """A float WAV of clicks with NaN every 100 samples for a while, +-inf and absurd values."""
    n = int(sr * seconds)
    t = np.arange(n) / sr
    x = 0.01 * np.sin(2 * np.pi * 110 * t)
    for onset in (0.5, 1.5, 2.5):
        i = int(onset * sr)
        x[i:i + 300] += 0.8 * np.exp(-np.arange(300) / 60.0) * np.sign(np.sin(np.arange(300)))
    x[int(0.9 * sr):int(1.2 * sr):100] = np.nan
    x[int(1.3 * sr)] = np.inf
    x[int(1.31 * sr)] = -np.inf
    x[int(2.0 * sr):int(2.0 * sr) + 50] = 7.5
    sf.write(path, x.astype(np.float32), sr, subtype="FLOAT")
    return path


# -- defect 1: digital silence after sound ------------------------------------------------------
def test_a_subnormal_hop_energy_is_silence_not_a_math_error():
    # the deterministic repro: `h = zeros(256); h[100] = 2e-161` (float64: the hop's
    # energy is subnormal, and energy / 256 rounds to 0.0)
    h = np.zeros(256)
    h[100] = 2e-161
    frame = Analyzer(44100).process(h)
    assert frame.rms_dbfs == -np.inf and frame.gated
    assert finite_features(frame)


@pytest.mark.parametrize("exponent", range(-175, -145, 3))
def test_tiny_values_at_every_magnitude_near_the_subnormals(exponent):
    analyzer = Analyzer(44100)
    for value in (10.0 ** exponent, 2.5 * 10.0 ** exponent):
        h = np.zeros(256)
        h[::37] = value
        assert finite_features(analyzer.process(h))


def test_thirty_seconds_of_digital_silence_after_music_through_the_analyzer():
    x, sr = music_then_silence(30.0, after_s=3.0)
    analyzer = Analyzer(sr)
    frames = run_hops(analyzer, x)         # the old analyzer raised at 25.8 s
    assert all(finite_features(f) for f in frames)
    start, end = 20.0, 50.0                # the silence
    assert all(f.gated and f.rms_dbfs == -np.inf for f in frames if start + 2 < f.time_s < end)
    # the DC blocker and the envelopes rang down to exact zero, not on into the subnormals
    assert all(f.level == f.low == f.mid == f.high == 0.0
               for f in frames if start + 20 < f.time_s < end)
    # and the show hears the music that comes back (the demo's beat starts at 2 s)
    assert any(f.onset for f in frames if f.time_s > end + 1.5)
    assert any(not f.gated for f in frames if f.time_s > end)


def test_tones_that_stop_dead_never_end_the_analysis():
    # the sweep: synthetic tones followed by exact zeros (16 of 24 crashed)
    sr = 44100
    for k, hz in enumerate((55.0, 110.0, 220.0, 440.0, 1000.0, 3000.0)):
        t = np.arange(int(0.3 * sr)) / sr
        tone = (0.5 * np.sin(2 * np.pi * hz * t + k)).astype(np.float32)
        x = np.concatenate([tone, np.zeros(7 * sr, np.float32)])
        frames = run_hops(Analyzer(sr), x)
        assert all(finite_features(f) for f in frames), hz
        assert frames[-1].rms_dbfs == -np.inf


def test_sox_repro_through_phosphene_analyze(tmp_path, capsys):
    # `sox demo.flac m.wav trim 0 10; sox m.wav b.wav pad 0 8; sox m.wav b.wav m.wav s.wav`
    m, sr = demo_seconds(10)
    s = np.concatenate([m, m, np.zeros(8 * sr, np.float32), m])
    path = tmp_path / "s.wav"
    sf.write(path, s, sr, subtype="PCM_16")
    assert main(["analyze", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "38.00 s" in out and "onsets:" in out


def test_thirty_seconds_of_digital_silence_after_music_through_render(tmp_path, capsys):
    x, sr = music_then_silence(30.0, after_s=1.0)
    audio = tmp_path / "silence.wav"
    sf.write(audio, x, sr, subtype="PCM_16")
    out = tmp_path / "silence.mp4"
    # the analysis runs from the file's start, through the silence, whatever --start says
    code = main(["render", str(audio), "-o", str(out), "--start", "50", "--duration", "1",
                 *RENDER])
    assert code == 0, capsys.readouterr().err
    with av.open(str(out)) as c:
        assert len([f for f in c.decode(video=0)]) == 10


# -- defect 5: NaN/inf in a file ----------------------------------------------------------------
def test_sanitize_audio_makes_samples_finite_and_full_scale():
    x = np.array([0.5, np.nan, np.inf, -np.inf, 2.0, -3.0, -0.25, 1e-40], np.float32)
    clean = sanitize_audio(x)
    np.testing.assert_array_equal(clean, [0.5, 0, 0, 0, 1, -1, -0.25, np.float32(1e-40)])
    assert np.isnan(x[1])                            # a new array unless told otherwise
    assert sanitize_audio(x, out=x) is x and np.isfinite(x).all()
    wide = np.array([[0.1, 1e300], [np.nan, -2.0]])  # float64 into float32, any shape
    out = np.empty((2, 2), np.float32)
    np.testing.assert_array_equal(sanitize_audio(wide, out=out),
                                  np.array([[0.1, 1.0], [0.0, -1.0]], np.float32))


def test_sanitize_audio_allocates_nothing_with_out_given():
    x = np.random.default_rng(0).uniform(-1.5, 1.5, 4096).astype(np.float32)
    out = np.empty_like(x)
    sanitize_audio(x, out=out)
    tracemalloc.start()
    try:
        for _ in range(50):
            sanitize_audio(x, out=out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 4          # scalars only, never a block-sized array


def test_nan_and_inf_in_a_file_are_analysed_as_silence(tmp_path, capsys):
    import json

    path = broken_clicks(tmp_path / "broken.wav")
    assert main(["analyze", str(path), "--json"]) == 0, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    for rec in doc["frames"]:
        values = [rec[name] for name in NUMERIC_FIELDS if name != "rms_dbfs"]
        assert np.isfinite(values).all(), rec
    onsets = np.array(doc["onsets"])
    for click in (0.5, 1.5, 2.5):
        assert np.min(np.abs(onsets - click)) < 0.05, onsets
    samples = load_audio(path).samples
    assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0


def test_render_of_a_file_with_nan_and_inf_finishes_with_finite_audio(tmp_path, capsys):
    audio = broken_clicks(tmp_path / "broken.wav")
    out = tmp_path / "broken.mp4"
    assert main(["render", str(audio), "-o", str(out), *RENDER]) == 0, capsys.readouterr().err
    with av.open(str(out)) as c:
        assert len([f for f in c.decode(video=0)]) == 30
    with av.open(str(out)) as c:
        sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert len(sound) > 2 * 22050 and np.isfinite(sound).all()
    assert np.abs(sound).max() < 1.5     # clipped to full scale (AAC may overshoot a little)


def test_video_writer_encodes_nan_audio_it_is_handed(tmp_path):
    sound = np.zeros(22050, np.float32)
    sound[::500] = np.nan
    sound[7000] = -np.inf
    out = tmp_path / "v.mp4"
    with VideoWriter(out, 32, 32, 10, audio=(sound, 22050)) as video:
        for _ in range(10):
            video.write(np.zeros((32, 32, 3), np.uint8))
    with av.open(str(out)) as c:
        decoded = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert np.isfinite(decoded).all()
    assert np.isnan(sound[0])            # the caller's samples are left alone


# -- defect 5: an output the render cannot write ------------------------------------------------
@pytest.fixture
def no_render(monkeypatch):
    """Fails the test if a render gets as far as loading anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("the render started before the output was checked")
    monkeypatch.setattr(offline.OfflineRender, "__init__", refuse)


@pytest.fixture
def immutable_dir(tmp_path):
    """A folder nobody, root included, can create files in (tests run as root, so permission
    bits would not do)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def bad_outputs(tmp_path: Path, locked: Path | None) -> list[tuple[list[str], Path]]:
    (tmp_path / "file.txt").write_text("a file, not a folder")
    (tmp_path / "taken.mp4").mkdir()
    cases = [
        (["-o", str(tmp_path / "file.txt" / "out.mp4")], tmp_path / "file.txt" / "out.mp4"),
        (["-o", str(tmp_path / "file.txt" / "deeper" / "out.mp4")],
         tmp_path / "file.txt" / "deeper" / "out.mp4"),
        (["-o", str(tmp_path / "taken.mp4")], tmp_path / "taken.mp4"),
        (["--frames", str(tmp_path / "file.txt" / "frames")], tmp_path / "file.txt" / "frames"),
        (["--still", "1", "-o", str(tmp_path / "file.txt" / "f.png")],
         tmp_path / "file.txt" / "f.png"),
    ]
    if locked is not None:
        cases += [(["-o", str(locked / "out.mp4")], locked / "out.mp4"),
                  (["--frames", str(locked)], locked)]
    return cases


def check_refused(audio: Path, args: list[str], named: Path, capsys) -> None:
    code = main(["render", str(audio), *args, *RENDER])
    err = capsys.readouterr().err
    assert code == 1, err
    assert str(named) in err and "Traceback" not in err and err.count("\n") == 1, err


def test_an_unwritable_output_fails_before_anything_is_rendered(tmp_path, capsys, no_render):
    audio = broken_clicks(tmp_path / "a.wav")
    for args, named in bad_outputs(tmp_path, None):
        check_refused(audio, args, named, capsys)


def test_an_immutable_folder_fails_before_anything_is_rendered(tmp_path, capsys, no_render,
                                                               immutable_dir):
    audio = broken_clicks(tmp_path / "a.wav")
    for args, named in bad_outputs(tmp_path, immutable_dir)[-2:]:
        check_refused(audio, args, named, capsys)
    assert not list(immutable_dir.iterdir())


def test_video_writer_refuses_an_unwritable_folder_when_opened(immutable_dir):
    # FFmpeg itself only opens the file at the first packet, with x264's lookahead near the
    # end of a short render: the writer must find out at once
    with pytest.raises(PhospheneError, match=str(immutable_dir / "v.mp4")):
        VideoWriter(immutable_dir / "v.mp4", 32, 32, 10)


def test_check_writable_leaves_nothing_behind(tmp_path):
    offline.check_writable(tmp_path / "new" / "deep" / "out.mp4")
    offline.check_writable(tmp_path / "frames", directory=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "frames", "new"]


# -- defect 11: analyze streams the file ------------------------------------------------------
def assert_same_as_in_memory(path: Path, channel: int | None, block_frames: int) -> None:
    source = FileSource(path, channel=channel)
    frames = list(Analyzer(source.sample_rate).run(source.blocks(256)))
    result = analyze_file(path, channel=channel, block_frames=block_frames)
    assert result.n_hops == len(frames)
    assert result.n_samples == len(source.mono)
    np.testing.assert_array_equal(result.sample_index, [f.sample_index for f in frames])
    for name in NUMERIC_FIELDS + FLAG_FIELDS:
        np.testing.assert_array_equal(result.column(name),
                                      np.array([getattr(f, name) for f in frames], float),
                                      err_msg=name)


@pytest.mark.parametrize("channel", [None, 2])
@pytest.mark.parametrize("block_frames", [1000, 768, 1 << 16])
def test_streamed_analysis_equals_the_whole_file_in_memory(tmp_path, channel, block_frames):
    x, sr = demo_seconds(6)
    rng = np.random.default_rng(3)
    channels = np.stack([x, x[::-1].copy(), 0.3 * rng.standard_normal(len(x)), 0.5 * x],
                        axis=1).astype(np.float32)
    channels[1000:1100, 2] = np.nan                # sanitized the same way on both paths
    channels[5000, 0] = 3.0
    path = tmp_path / "four.wav"
    sf.write(path, channels, sr, subtype="FLOAT")
    assert_same_as_in_memory(path, channel, block_frames)


def test_streamed_analysis_of_a_file_only_ffmpeg_reads(tmp_path):
    x, sr = demo_seconds(4)
    path = tmp_path / "demo.m4a"                   # AAC: not libsndfile's, PyAV decodes it
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sr, layout="stereo")
        stereo = np.stack([x, 0.5 * x]).astype(np.float32)
        for i in range(0, stereo.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, i:i + 1024]),
                                               format="fltp", layout="stereo")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert_same_as_in_memory(path, None, 1000)
    assert_same_as_in_memory(path, 1, 3000)


def test_analyze_reads_the_file_a_block_at_a_time(tmp_path, monkeypatch):
    """A regression to whole-file loading (``sf.read`` / ``load_audio``) shows up as a read
    of more frames than one block."""
    sr = 22050
    x = (0.1 * np.random.default_rng(0).standard_normal(20 * sr)).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, x, sr)
    reads = []
    real_read = sf.SoundFile.read

    def spy(self, *args, **kwargs):
        data = real_read(self, *args, **kwargs)
        reads.append(len(data))
        return data

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    result = analyze_file(path, block_frames=4096)
    assert result.n_samples == len(x) and result.duration_s == pytest.approx(20.0)
    assert reads and max(reads) <= 4096 and sum(reads) == len(x)


def test_the_block_stream_holds_one_block_not_the_file(tmp_path):
    sr = 22050
    x = (0.1 * np.random.default_rng(1).standard_normal(60 * sr)).astype(np.float32)
    path = tmp_path / "minute.flac"
    sf.write(path, x, sr)
    tracemalloc.start()
    try:
        with AudioFileStream(path, block_frames=8192) as stream:
            hops = sum(1 for _ in stream.mono_hops(256))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert hops == -(-len(x) // 256)
    assert peak < x.nbytes / 10, peak      # the file is 5.3 MB as float32


def test_plot_from_the_streamed_waveform_envelope(tmp_path):
    from phosphene.live.analysis.plot import plot_analysis

    x, sr = demo_seconds(3)
    path = tmp_path / "d.wav"
    sf.write(path, x, sr)
    result = analyze_file(path)
    assert result.wave_min.min() == pytest.approx(x.min())
    assert result.wave_max.max() == pytest.approx(x.max())
    assert plot_analysis(result, tmp_path / "p.png").is_file()
