"""How generator frames reach the GL texture: the path the uploader picks and why.

On this machine (no CUDA, Mesa llvmpipe) frames take the host path, pixel-identical to a numpy
reference conversion, and CUDA-GL interop reports why it is unavailable. The CUDA paths (pinned
asynchronous copy, interop) run in ``phosphene bench gpu``'s upload check on a GPU machine; the
last test here runs that check where CUDA exists, and another shows it fails on a wrong pixel.
"""

import logging
import sys

import numpy as np
import pytest
import torch

from phosphene.render import cuda_gl
from phosphene.render.context import create_headless_context
from phosphene.render.upload import PATH_HOST, FrameConverter, FrameUploader

H, W = 24, 40


@pytest.fixture(scope="module")
def ctx():
    c = create_headless_context()
    yield c
    c.release()


def reference_pixels(chw: np.ndarray) -> np.ndarray:
    """The conversion spelled out in float32: (x + 1) * 127.5 + 0.5, clipped, truncated."""
    x = chw.astype(np.float32)
    x = (x + np.float32(1.0)) * np.float32(127.5) + np.float32(0.5)
    return np.clip(x, 0.0, 255.0).astype(np.uint8).transpose(1, 2, 0)


def float_frame(channels=3, seed=0) -> np.ndarray:
    # beyond [-1, 1] at the edges (clipping) and values landing near .5 boundaries
    rng = np.random.default_rng(seed)
    return (rng.random((1, channels, H, W), dtype=np.float32) * 2.4 - 1.2)


def texture_pixels(uploader) -> np.ndarray:
    h, w = uploader.size[1], uploader.size[0]
    data = np.frombuffer(uploader.newest.read(alignment=1), np.uint8)
    return data.reshape(h, w, -1)


@pytest.mark.parametrize("make", [
    lambda f: f,                                        # numpy float NCHW
    lambda f: f[0],                                     # numpy float CHW
    lambda f: torch.from_numpy(f),                      # torch float NCHW on the CPU
    lambda f: torch.from_numpy(f).double(),             # another float dtype
], ids=["numpy-nchw", "numpy-chw", "torch-f32", "torch-f64"])
def test_cpu_float_frames_take_the_host_path_pixel_identical(ctx, make):
    f = float_frame()
    expected = reference_pixels(f[0])
    uploader = FrameUploader(ctx)
    uploader.push(make(f))
    assert uploader.path == PATH_HOST
    assert "not on a CUDA device" in uploader.interop_unavailable
    np.testing.assert_array_equal(texture_pixels(uploader), expected)
    # the previous texture holds the same first frame; a second push moves it
    np.testing.assert_array_equal(
        np.frombuffer(uploader.previous.read(alignment=1), np.uint8).reshape(H, W, 3), expected)
    g = float_frame(seed=1)
    uploader.push(make(g))
    np.testing.assert_array_equal(texture_pixels(uploader), reference_pixels(g[0]))
    uploader.release()


@pytest.mark.parametrize("channels", [3, 4])
def test_cpu_uint8_frames_upload_unchanged(ctx, channels):
    img = np.random.default_rng(2).integers(0, 256, (H, W, channels), dtype=np.uint8)
    for frame in (img, torch.from_numpy(img)):
        uploader = FrameUploader(ctx)
        uploader.push(frame)
        assert uploader.path == PATH_HOST
        np.testing.assert_array_equal(texture_pixels(uploader), img)
        uploader.release()


def test_converter_reports_its_path_and_matches_the_reference():
    conv = FrameConverter()
    f = float_frame(seed=3)
    for frame in (f, torch.from_numpy(f)):
        np.testing.assert_array_equal(conv(frame), reference_pixels(f[0]))
        assert conv.path == PATH_HOST


def test_interop_switched_off_is_the_reason(ctx):
    uploader = FrameUploader(ctx, interop=False)
    uploader.push(torch.from_numpy(float_frame()))
    assert uploader.path == PATH_HOST
    assert uploader.interop_unavailable == "switched off (interop=False)"
    uploader.release()


def test_frames_not_on_cuda_are_the_reason(ctx):
    assert "not on a CUDA device (cpu)" in cuda_gl.unavailable_reason(ctx, torch.device("cpu"))


def test_on_llvmpipe_the_reason_is_the_gl_vendor(ctx, monkeypatch):
    monkeypatch.setattr(cuda_gl, "cuda_runtime", lambda: (object(), None))  # as if installed
    reason = cuda_gl.unavailable_reason(ctx, torch.device("cuda", 0))
    renderer = ctx.info["GL_RENDERER"]
    assert reason.startswith("the OpenGL context is not on an NVIDIA GPU"), reason
    assert renderer in reason


def test_without_cuda_python_the_reason_says_how_to_install(ctx, monkeypatch):
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)       # import fails
    runtime, why = cuda_gl.cuda_runtime()
    assert runtime is None and "cuda-python is not installed" in why and "[gpu]" in why
    assert cuda_gl.unavailable_reason(ctx, torch.device("cuda", 0)) == why


def test_the_environment_switch_comes_first(ctx, monkeypatch):
    monkeypatch.setenv(cuda_gl.ENV_SWITCH, "0")
    reason = cuda_gl.unavailable_reason(ctx, torch.device("cuda", 0))
    assert reason == f"switched off by {cuda_gl.ENV_SWITCH}=0"


class _NvidiaStrings:
    """Only the GL strings of an NVIDIA context: the CUDA calls after them are real."""
    info = {"GL_VENDOR": "NVIDIA Corporation", "GL_RENDERER": "NVIDIA H200/PCIe/SSE2"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_nvidia_strings_leave_the_decision_to_the_registration(ctx):
    """When the GL context's CUDA devices cannot be read (here: no driver), interop is not
    refused up front; registering the buffer then fails with the CUDA error named, which the
    uploader takes as its reason to fall back."""
    pytest.importorskip("cuda.bindings.runtime")
    assert cuda_gl.unavailable_reason(_NvidiaStrings(), torch.device("cuda", 0)) is None
    buffer = ctx.buffer(reserve=H * W * 3)
    with pytest.raises(cuda_gl.InteropError, match=r"failed \(cudaError"):
        cuda_gl.GLBufferInterop(buffer, 0)
    buffer.release()


def test_an_unavailable_interop_is_logged_once_per_reason(monkeypatch, caplog):
    monkeypatch.setattr(cuda_gl, "_logged_reasons", set())
    with caplog.at_level(logging.INFO, logger=cuda_gl.__name__):
        cuda_gl.note_unavailable("reason A")
        cuda_gl.note_unavailable("reason A")
        cuda_gl.note_unavailable("reason B")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "reason A" in lines[0] and "pinned host memory" in lines[0]


def test_bench_upload_check_on_the_cpu_states_the_path():
    from phosphene.live.runtime.bench_gpu import upload_check

    frame = torch.from_numpy(float_frame(seed=4))
    r = upload_check(frame, W)
    assert r["status"] == "pass", r
    assert r["path"] == PATH_HOST and r["texture_diffs"] == {PATH_HOST: 0}
    assert r["interop"] == "not available: the frames are not on a CUDA device (cpu)"


def test_bench_upload_check_fails_on_a_wrong_pixel(monkeypatch):
    """The check compares what reached the texture, so an upload that changes one pixel by
    a level or two fails it."""
    from phosphene.live.runtime.bench_gpu import upload_check

    real_push = FrameUploader.push

    def off_by_one(self, frame, ready=None):
        bent = frame.clone()
        bent[..., 0, 0] += 2.0 / 127.5          # two 8-bit levels in the top-left pixel
        real_push(self, bent, ready=ready)

    monkeypatch.setattr(FrameUploader, "push", off_by_one)
    r = upload_check(torch.zeros(1, 3, H, W), W)
    assert r["status"] == "fail" and r["texture_max_abs_diff"] >= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: runs on a GPU machine")
def test_on_cuda_every_upload_path_is_pixel_equal():
    from phosphene.live.runtime.bench_gpu import upload_check

    frame = torch.from_numpy(float_frame(seed=5)).cuda()
    r = upload_check(frame, W)
    assert r["status"] == "pass", r
    assert r["path"] in ("cuda-gl-interop", "pinned-async-copy")
    assert len(r["texture_diffs"]) >= 3        # own path, and frames from a busy producer
