"""``phosphene models info|sample`` and ``phosphene bench generator``, run as a user runs them."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from phosphene.commands._args import UsageError, seeds
from phosphene.commands.models import image_grid


def phosphene(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "phosphene", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_info_builtin():
    result = phosphene("models", "info", "builtin:abstract")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "format" in out and "builtin" in out
    assert "256x256" in out
    assert "num_ws" in out and "14" in out
    assert "conditional" in out and "no" in out
    assert "params" in out


def test_sample_writes_grid_of_the_right_size(tmp_path):
    out = tmp_path / "grid.png"
    result = phosphene("models", "sample", "builtin:abstract", "--seeds", "0-3", "--psi", "0.7",
                       "-o", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (512, 512)  # 4 images of 256x256 in a 2x2 grid
        pixels = np.asarray(im)
    tiles = [pixels[:256, :256], pixels[:256, 256:], pixels[256:, :256], pixels[256:, 256:]]
    assert all(t.std() > 10 for t in tiles)  # real pictures, not blank
    assert not np.array_equal(tiles[0], tiles[1])  # each seed its own image


def test_sample_is_reproducible_per_seed(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert phosphene("models", "sample", "builtin:abstract", "--seeds", "3", "-o", str(a)).returncode == 0
    assert phosphene("models", "sample", "builtin:abstract", "--seeds", "2-3", "--cols", "2",
                     "-o", str(b)).returncode == 0
    single = np.asarray(Image.open(a))
    pair = np.asarray(Image.open(b))
    # batch 1 and batch 2 run different (equivalent) conv paths: equal up to rounding
    assert np.abs(single.astype(int) - pair[:, 256:].astype(int)).max() <= 1
    assert np.abs(single.astype(int) - pair[:, :256].astype(int)).mean() > 5


@pytest.mark.parametrize("bad", ["0-x", "5-2", "a,b", "", "0-99999999999"])
def test_bad_seeds_are_a_usage_error(tmp_path, bad):
    """Refused while parsing the command line (exit 2), before any model is loaded."""
    result = phosphene("models", "sample", "builtin:abstract", "--seeds", bad,
                       "-o", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "phosphene models sample: error: argument --seeds: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_unknown_builtin_and_bad_class_are_one_line(tmp_path):
    result = phosphene("models", "info", "builtin:nope")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "phosphene: error: unknown built-in model 'builtin:nope'; known: builtin:abstract"] or \
        "builtin:abstract" in result.stderr
    result = phosphene("models", "sample", "builtin:abstract", "--class", "2", "-o",
                       str(tmp_path / "x.png"))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "unconditional" in result.stderr


def test_parse_seeds():
    assert seeds("0-3,7, 9-10") == [0, 1, 2, 3, 7, 9, 10]
    with pytest.raises(UsageError, match="'x'"):
        seeds("1,x")
    with pytest.raises(UsageError, match="at most 1024"):
        seeds("0-1023,2000")


def test_image_grid_layout():
    images = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    grid = image_grid(images, cols=3)
    assert grid.shape == (4, 6, 3)
    assert np.array_equal(grid[2:4, 2:4], images[4])
    assert not grid[2:4, 4:6].any()  # unused cell stays black


def test_bench_generator_prints_rates():
    result = phosphene("bench", "generator", "--size", "32", "--batch", "1,2", "--frames", "2")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("builtin:abstract@32")]
    assert len(rows) == 2
    assert [int(r.split()[2]) for r in rows] == [1, 2]
    assert all(float(r.split()[-1]) > 0 for r in rows)


def test_bench_fp16_without_cuda_is_a_clear_error():
    result = phosphene("bench", "generator", "--device", "cpu", "--precision", "fp16")
    assert result.returncode == 1
    assert "fp16 needs a CUDA device" in result.stderr


def test_the_compiled_speedup_is_timed_in_turns():
    """``bench generator --compile``'s ratio comes from alternating calls (a drifting machine
    must not favour one side): the calls interleave, each gets the same count, and the medians
    are the callers' own (a slow function is slower)."""
    import time

    import torch

    from phosphene.models.bench import time_interleaved

    order = []

    def fast(ws):
        order.append("fast")

    def slow(ws):
        order.append("slow")
        time.sleep(0.004)

    fast_s, slow_s = time_interleaved([fast, slow], torch.zeros(1), torch.device("cpu"),
                                      frames=20)
    timed = order[6:]                         # after three warm-up calls of each
    assert timed == ["fast", "slow"] * 20
    assert slow_s >= 0.004 > fast_s
