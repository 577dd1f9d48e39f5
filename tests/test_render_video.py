"""MP4 files written by VideoWriter, read back with PyAV: codec, size, frame count, audio length,
audio/video sync and frame content."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import av
from phosphene.errors import PhospheneError
from phosphene.render.headless import HeadlessRenderer
from phosphene.render.video import VideoWriter

W, H, FPS, SR = 96, 64, 25, 44100
BACKGROUND = (30, 60, 90)


def solid(rgb, w=W, h=H):
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def read_back(path):
    """(video stream info, decoded RGB frames with times, audio samples, audio start time)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = dict(codec=v.codec_context.name, pix_fmt=v.codec_context.pix_fmt, width=v.width,
                    height=v.height, has_audio=bool(c.streams.audio))
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    audio, a_start = None, 0.0
    if info["has_audio"]:
        with av.open(str(path)) as c:
            chunks = list(c.decode(audio=0))
            a_start = chunks[0].time
            audio = np.concatenate([f.to_ndarray() for f in chunks], axis=1)
    return info, frames, audio, a_start


def click_track(seconds, click_at, channels=1):
    audio = np.zeros((int(SR * seconds), channels), np.float32)
    start = int(SR * click_at)
    audio[start:start + 400] = 0.8
    return audio


def test_mp4_is_h264_yuv420p_with_synced_audio_of_the_same_length(tmp_path):
    path = tmp_path / "show.mp4"
    n_frames, flash_frame = 50, 30
    audio = click_track(2.0, flash_frame / FPS)  # the click sounds when the red frame shows
    with VideoWriter(path, W, H, FPS, audio=(audio, SR), preset="veryfast") as video:
        for k in range(n_frames):
            video.write(solid((255, 0, 0) if k == flash_frame else BACKGROUND))
    assert not list(tmp_path.glob(".*partial*"))  # temporary file renamed into place

    info, frames, samples, a_start = read_back(path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (W, H)
    assert len(frames) == n_frames
    video_s = n_frames / FPS
    audio_s = samples.shape[1] / SR
    assert abs(audio_s - video_s) <= 1 / FPS

    red = [k for k, (_, rgb) in enumerate(frames) if rgb[H // 2, W // 2, 0] > 200]
    assert red == [flash_frame]
    assert np.abs(frames[0][1].astype(int) - BACKGROUND).max() <= 6
    assert np.abs(frames[flash_frame][1].astype(int) - (255, 0, 0)).max() <= 6
    click_s = a_start + np.argmax(np.abs(samples[0]) > 0.3) / SR
    assert abs(click_s - frames[flash_frame][0]) <= 1 / FPS


@pytest.mark.parametrize("audio_s", [1.0, 3.0])
def test_audio_is_padded_or_cut_to_the_video_length(tmp_path, audio_s):
    path = tmp_path / "len.mp4"
    wav = tmp_path / "in.wav"
    stereo = np.random.default_rng(0).uniform(-0.3, 0.3, (int(SR * audio_s), 2)).astype(np.float32)
    sf.write(wav, stereo, SR)
    with VideoWriter(path, W, H, FPS, audio=wav, preset="ultrafast") as video:
        for _ in range(50):  # 2 s of video
            video.write(solid(BACKGROUND))
    _, frames, samples, _ = read_back(path)
    assert samples.shape[0] == 2  # stereo kept
    assert abs(samples.shape[1] / SR - len(frames) / FPS) <= 1 / FPS
    if audio_s < 2.0:  # the tail is silence
        assert np.abs(samples[:, int(1.2 * SR):int(1.9 * SR)]).max() < 0.01


def test_video_without_audio_and_bad_input(tmp_path):
    path = tmp_path / "silent.mp4"
    with VideoWriter(path, W, H, 30, preset="ultrafast") as video:
        for _ in range(3):
            video.write(solid(BACKGROUND))
        with pytest.raises(PhospheneError, match=r"\(64, 96, 3\) uint8"):
            video.write(np.zeros((10, 10, 3), np.uint8))
    info, frames, _, _ = read_back(path)
    assert not info["has_audio"] and len(frames) == 3
    with pytest.raises(PhospheneError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", 95, 64, 30)
    with pytest.raises(PhospheneError, match="mono or stereo"):
        VideoWriter(tmp_path / "x.mp4", W, H, 30, audio=(np.zeros((5, 100, 100)), SR))


def test_an_interrupted_render_leaves_no_file(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, W, H, 30, preset="ultrafast") as video:
            video.write(solid(BACKGROUND))
            raise RuntimeError("render crashed")
    assert list(tmp_path.iterdir()) == []


def test_headless_chain_to_video_with_async_readback(tmp_path):
    """The offline path: generator frames -> chain (flash driven per frame) -> MP4."""
    path = tmp_path / "chain.mp4"
    n = 12
    with HeadlessRenderer(W, H, ["flash"]) as r, \
            VideoWriter(path, W, H, FPS, audio=(np.zeros(SR, np.float32), SR),
                        preset="ultrafast") as video:
        r.push_frame(solid((40, 40, 40), 32, 32))
        for k in range(n):
            r.set_params({"flash.amount": 1.0 if k % 4 == 0 else 0.0})
            done = r.render(k / FPS)
            if done is not None:
                video.write(done)
        for done in r.drain():
            video.write(done)
    _, frames, samples, _ = read_back(path)
    assert len(frames) == n
    bright = [k for k, (_, rgb) in enumerate(frames) if rgb[H // 2, W // 2].mean() > 200]
    assert bright == [0, 4, 8]
    # letterbox bars of the square generator frame survive encoding
    assert frames[1][1][:, :8].max() <= 20 and frames[1][1][:, W // 2].min() >= 30
    assert abs(samples.shape[1] / SR - n / FPS) <= 1 / FPS
