"""``phosphene render --cluster local:2``: chunks of frames rendered by two Ray workers, joined
into one MP4 whose frames are the local render's, byte for byte.

Real parts throughout: a local Ray runtime (2 CPU workers), builtin:abstract on the CPU, the
effect chain on EGL in each worker (or on the driver, for a chain with trails), H.264 + AAC
through PyAV, read back with PyAV.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray")

from offline_material import BUSY_PRESET, write_clicks, write_preset  # noqa: E402
from phosphene.cli import main  # noqa: E402
from phosphene.cluster import connect  # noqa: E402
from phosphene.live.runtime.cluster_render import (chunk_plan, needs_driver_chain,  # noqa: E402
                                                   render_on_cluster)
from phosphene.live.runtime.offline import (OfflineRender, RenderSettings,  # noqa: E402
                                            render_video)
from phosphene.live.runtime.session import source_from_preset  # noqa: E402
from test_offline_render import read_mp4  # noqa: E402

FPS = 12
SIZE = (64, 64)
CHUNK_FRAMES = 8          # 24 frames: 3 chunks over 2 workers, one worker renders two

# Everything moves (latent modes, an onset flash, colour), but nothing keeps history: each
# worker draws its own frames through its own chain.
MOVING_PRESET = """\
name: moving-test
model: builtin:abstract
output: {width: 64, height: 64, fps: 12}
keyframes: [{seed: 3}, {seed: 4}, {seed: 5}]
transition_ms: 200
modes:
  volume-blend: {weight: 0.7, source: level}
  onset-step: {weight: 1.0, length: 150, unit: ms}
  drift: {weight: 0.3, period: 1.0, unit: seconds}
mappings:
  - {source: onset, target: flash.amount, gain: 0.8, release_ms: 100}
effects:
  - {name: color, params: {saturation: 1.2}}
  - {name: flash}
"""


@pytest.fixture(scope="module")
def G():
    from phosphene.models import load_generator

    return load_generator("builtin:abstract")


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster_render")
    return (write_clicks(d / "clicks.wav"), write_preset(d / "moving.yaml", MOVING_PRESET),
            write_preset(d / "busy.yaml", BUSY_PRESET))


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray runtime with 2 CPU workers for the module (starting one takes ~20 s);
    ``--cluster local:2`` inside the tests joins it. Its sockets live in a short temp folder
    (a Unix socket path must stay under 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="phr", dir="/tmp") as tmp:
        with connect("local:2", temp_dir=tmp) as cluster:
            assert cluster.cpus == 2 and cluster.gpus == 0
            yield cluster


def make_job(G, audio, preset) -> OfflineRender:
    settings = RenderSettings(size=SIZE, fps=FPS, progress=False, batch=4, device="cpu")
    return OfflineRender(audio, source_from_preset(str(preset), None), settings, generator=G)


def pngs(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]


def test_chunks_start_on_whole_batches():
    assert chunk_plan(24, 4, 8) == [(0, 8), (8, 8), (16, 8)]
    assert chunk_plan(10, 4, 6) == [(0, 4), (4, 4), (8, 2)]       # 6 -> one batch of 4
    assert chunk_plan(5, 4, 1) == [(0, 4), (4, 1)]


def test_trails_drawn_on_the_driver_give_the_local_renders_frames(G, material, ray_local,
                                                                   tmp_path):
    """A chain with a trail effect: workers make the generator frames, the driver draws them
    through one chain."""
    audio, preset = material[0], material[2]
    assert needs_driver_chain(make_job(G, audio, preset).source)
    render_video(make_job(G, audio, preset), tmp_path / "local.mp4", tmp_path / "local")
    result = render_on_cluster(make_job(G, audio, preset), audio, tmp_path / "cluster.mp4",
                               tmp_path / "cluster", "local:2", device="cpu",
                               chunk_frames=CHUNK_FRAMES)
    local, cluster = pngs(tmp_path / "local"), pngs(tmp_path / "cluster")
    assert result.frames == len(local) == len(cluster) == 24
    # the raw frames, before encoding
    for k, (a, b) in enumerate(zip(local, cluster)):
        assert np.array_equal(a, b), f"frame {k} differs"
    assert len({a.tobytes() for a in local}) > 12          # a moving picture, not one still
    # and the videos: one encoder over the same frames decodes to the same pixels
    info_l, frames_l, samples_l, _ = read_mp4(tmp_path / "local.mp4")
    info_c, frames_c, samples_c, _ = read_mp4(tmp_path / "cluster.mp4")
    assert info_c["audio"] and samples_c == samples_l
    assert len(frames_c) == len(frames_l) == 24
    for k, (a, b) in enumerate(zip(frames_l, frames_c)):
        assert np.array_equal(a, b), f"decoded frame {k} differs"


def test_render_cli_with_cluster_writes_the_local_video(G, material, ray_local, tmp_path,
                                                        capsys):
    """No effect with history: each worker draws its chunk through its own chain."""
    audio, preset = material[0], material[1]
    assert not needs_driver_chain(make_job(G, audio, preset).source)
    common = [str(audio), "--preset", str(preset), "--size", "64x64", "--fps", str(FPS),
              "--device", "cpu", "--no-progress"]
    assert main(["render", *common, "-o", str(tmp_path / "local.mp4"),
                 "--frames", str(tmp_path / "local")]) == 0
    assert main(["render", *common, "-o", str(tmp_path / "cluster.mp4"),
                 "--frames", str(tmp_path / "cluster"),
                 "--cluster", "local:2", "--chunk-seconds", "0.5"]) == 0   # 6 chunks of one batch
    assert "on cluster local:2" in capsys.readouterr().err
    raw_local, raw_cluster = pngs(tmp_path / "local"), pngs(tmp_path / "cluster")
    assert len(raw_local) == len(raw_cluster) == 24
    for k, (a, b) in enumerate(zip(raw_local, raw_cluster)):
        assert np.array_equal(a, b), f"frame {k} differs"
    assert len({a.tobytes() for a in raw_local}) > 12       # a moving picture, not one still
    _, local, _, _ = read_mp4(tmp_path / "local.mp4")
    _, cluster, _, _ = read_mp4(tmp_path / "cluster.mp4")
    assert len(local) == len(cluster) == 24
    assert all(np.array_equal(a, b) for a, b in zip(local, cluster))


def test_cuda_on_a_cluster_without_gpus_is_one_line(material, ray_local, tmp_path, capsys):
    audio, preset = material[0], material[1]
    out = tmp_path / "x.mp4"
    code = main(["render", str(audio), "--preset", str(preset), "--size", "64x64",
                 "--device", "cuda", "-o", str(out), "--cluster", "local:2", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == ("phosphene: error: --device cuda: the cluster (local:2) has no GPUs "
                       "(start its workers with `ray start ... --num-gpus N`, or use "
                       "--device cpu)")
    assert not out.exists()


def test_replay_with_events_and_a_preset_switch_matches_the_local_replay(G, material,
                                                                          ray_local, tmp_path):
    """A recorded set (parameter changes, effect switches, a preset switch mid-set): the
    chain is drawn on the driver, the frames are the local replay's."""
    from test_recording import live_run

    live_run(G, material[0], tmp_path / "set")
    common = ["render", "--replay", str(tmp_path / "set"), "--size", "64x64", "--fps",
              str(FPS), "--device", "cpu", "--no-progress"]
    assert main([*common, "--frames", str(tmp_path / "local")]) == 0
    assert main([*common, "--frames", str(tmp_path / "cluster"), "--cluster", "local:2",
                 "--chunk-seconds", "0.7"]) == 0
    local, cluster = pngs(tmp_path / "local"), pngs(tmp_path / "cluster")
    assert len(local) == len(cluster) == 24
    for k, (a, b) in enumerate(zip(local, cluster)):
        assert np.array_equal(a, b), f"frame {k} differs"


def _chunk_worker_pids() -> list[int]:
    """Ray workers that are rendering a chunk now (Ray titles a busy actor's process
    ``ray::ChunkRenderer.<method>``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::ChunkRenderer.pixels"):
            pids.append(int(proc.name))
    return pids


def test_a_render_worker_killed_mid_chunk_is_restarted_and_nothing_is_lost(G, material,
                                                                          ray_local, tmp_path):
    """The test kills a worker (SIGKILL, by its pid) while it renders a chunk: Ray restarts
    it, the chunk is rendered again, and the video has every frame, the local render's."""
    import os
    import signal
    import threading
    import time

    audio, preset = material[0], material[1]
    render_video(make_job(G, audio, preset), None, tmp_path / "local")
    killed: list[int] = []
    done = threading.Event()

    def kill_one() -> None:
        while not done.is_set() and not killed:
            pids = _chunk_worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    try:
        result = render_on_cluster(make_job(G, audio, preset), audio, None, tmp_path / "cluster",
                                   "local:2", device="cpu", chunk_frames=CHUNK_FRAMES)
    finally:
        done.set()
        killer.join(5)
    assert killed, "no worker was caught rendering a chunk"
    local, cluster = pngs(tmp_path / "local"), pngs(tmp_path / "cluster")
    assert result.frames == len(local) == len(cluster) == 24
    for k, (a, b) in enumerate(zip(local, cluster)):
        assert np.array_equal(a, b), f"frame {k} differs"
