"""Video out: the final picture as an NDI source (received here by the same package's receiver),
and the argument checks of every output."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from live_engine_helpers import EngineRun, tiny_generator, write_clicks, write_presets
from phosphene.cli import main as cli_main
from phosphene.live.runtime.engine import EngineOptions
from phosphene.render import outputs as O

FIND_TIMEOUT_S = 20.0


def ndi_receive(source_suffix: str, want: int, stop: threading.Event, got: list, errors: list):
    """Find the NDI source whose name ends with ``source_suffix`` and collect ``want`` video
    frames as (timecode, RGBX pixels). Discovery over mDNS needs a network; ``extra_ips``
    asks this machine directly, as a receiver told the sender's address would."""
    import NDIlib as ndi

    try:
        assert ndi.initialize()
        find_create = ndi.FindCreate()
        find_create.show_local_sources = True
        find_create.extra_ips = "127.0.0.1"
        finder = ndi.find_create_v2(find_create)
        deadline = time.monotonic() + FIND_TIMEOUT_S
        source = None
        while source is None and not stop.is_set():
            assert time.monotonic() < deadline, "the NDI source was not found"
            ndi.find_wait_for_sources(finder, 200)
            source = next((s for s in ndi.find_get_current_sources(finder)
                           if s.ndi_name.endswith(source_suffix)), None)
        if source is None:
            return
        recv_create = ndi.RecvCreateV3()
        recv_create.color_format = ndi.RECV_COLOR_FORMAT_RGBX_RGBA
        recv_create.bandwidth = ndi.RECV_BANDWIDTH_HIGHEST
        receiver = ndi.recv_create_v3(recv_create)
        ndi.recv_connect(receiver, source)
        while len(got) < want and not stop.is_set():
            kind, video, _, _ = ndi.recv_capture_v2(receiver, 200)
            if kind == ndi.FRAME_TYPE_VIDEO:
                got.append((int(video.timecode), np.copy(video.data)))
                ndi.recv_free_video_v2(receiver, video)
        ndi.recv_destroy(receiver)
        ndi.find_destroy(finder)
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        errors.append(exc)


@pytest.mark.parametrize("display", ["process", "thread"])
def test_ndi_receiver_gets_the_presented_frames(tmp_path, display):
    pytest.importorskip("NDIlib", reason="ndi-python is in the dev extra: pip install -e '.[dev]'")
    name = f"phosphene-test-{os.getpid()}-{display}"
    preset = write_presets(tmp_path / "presets")
    wav = write_clicks(tmp_path / "clicks.wav", np.arange(0.5, 9.0, 0.4), 10.0)
    options = EngineOptions(preset=str(preset), audio_file=wav, output="none", headless=True,
                            osc_port=None, size=(96, 64), fps=15, display=display, ndi=name)
    got: list = []
    errors: list = []
    stop = threading.Event()
    with EngineRun(options, generator=tiny_generator(), pixels=True) as run:
        receiver = threading.Thread(target=ndi_receive, args=(f"({name})", 12, stop, got, errors))
        receiver.start()
        receiver.join(FIND_TIMEOUT_S + 10)
        stop.set()
        receiver.join(5)
        report = run.wait()
    assert not errors, errors[0]
    assert len(got) == 12, f"received {len(got)} NDI frames"

    presented = {f.index: f.pixels.astype(np.int16) for f in run.observed.frames}
    errors_by_frame = []
    for timecode, pixels in got:
        assert timecode in presented, f"timecode {timecode} is not a presented frame"
        assert pixels.shape == (64, 96, 4)
        rgb = pixels[..., :3].astype(np.int16)
        diff = np.abs(rgb - presented[timecode])
        # a presented frame that clearly differs from this one is farther from what came
        different = [float(np.abs(rgb - p).mean()) for p in presented.values()
                     if np.abs(p - presented[timecode]).mean() > 10.0]
        errors_by_frame.append((timecode, float(diff.mean()), int(diff.max()),
                                min(different, default=None)))
    print("received (timecode, mean abs error, max abs error, a different frame's):",
          errors_by_frame)
    # NDI's codec is lossy (SpeedHQ on 4:2:2 YUV): the pixels cannot match exactly; measured
    # here a mean error of 2.0-2.5 levels and a maximum of 11-29 (edges, where the chroma is
    # halved).
    for timecode, mean_err, max_err, other in errors_by_frame:
        assert mean_err < 4.0 and max_err <= 64, (timecode, mean_err, max_err)
        assert other is None or other > mean_err, (timecode, mean_err, other)

    ndi_report = report["display"]["outputs"]["ndi"]
    assert ndi_report["errors"] == 0
    assert ndi_report["sent"] >= len({t for t, _ in got})
    assert ndi_report["sent"] + ndi_report["dropped"] <= report["frames"]["presented"]
    assert ndi_report["source"].endswith(f"({name})")


# -- the sender thread: one-slot mailbox ------------------------------------------------------------

class SlowSink:
    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.indices: list[int] = []
        self.closed = False

    def send(self, frame, index):
        time.sleep(self.delay_s)
        self.indices.append(index)

    def info(self):
        return {"kind": "slow"}

    def close(self):
        self.closed = True


def test_a_slow_output_drops_frames_and_never_blocks_the_offer():
    sink = SlowSink(0.05)
    sender = O.SenderThread("slow", lambda: sink)
    frame = np.zeros((4, 4, 4), np.uint8)
    started = time.monotonic()
    for i in range(40):
        sender.offer(frame, i)
        time.sleep(0.002)
    offer_time = time.monotonic() - started
    report = sender.close()
    assert offer_time < 0.5                          # 40 offers did not wait for 40 sends
    assert sink.closed and report["kind"] == "slow"
    assert report["sent"] == len(sink.indices)
    assert report["sent"] + report["dropped"] == 40
    assert report["dropped"] > 0
    assert sink.indices[-1] == 39                    # the newest frame is the one kept
    assert sink.indices == sorted(sink.indices)


def test_a_failing_output_counts_errors_and_goes_on():
    class Failing(SlowSink):
        def send(self, frame, index):
            raise OSError("device gone")

    sender = O.SenderThread("failing", lambda: Failing(0))
    for i in range(3):
        sender.offer(np.zeros((2, 2, 4), np.uint8), i)
        time.sleep(0.05)
    report = sender.close()
    assert report["errors"] == 3 and report["sent"] == 0
    assert "device gone" in report["last_error"]


def test_an_output_that_cannot_open_raises_its_line():
    def make():
        raise O.VideoOutputError("--v4l2 /dev/video3: busy")

    with pytest.raises(O.VideoOutputError, match="busy"):
        O.SenderThread("v4l2", make)


def test_async_readback_outputs_follow_the_canvas():
    """``VideoOutputs`` reads each canvas back a frame late, with its index, and survives the
    canvas changing size (the display's budget)."""
    from phosphene.render.context import create_headless_context

    ctx = create_headless_context()
    try:
        sink = SlowSink(0)
        outputs = O.VideoOutputs(ctx, O.VideoOutputSpec(), (8, 6), 30.0)
        outputs.senders["test"] = O.SenderThread("test", lambda: sink)
        received = []
        sink.send = lambda frame, index: received.append((index, frame.copy()))
        colours = []
        for i, size in enumerate([(8, 6)] * 3 + [(4, 4)] * 2):
            fbo = ctx.simple_framebuffer(size, components=4)
            fbo.use()
            colour = (i * 40, 255 - i * 40, 7 * i)
            fbo.clear(*(c / 255 for c in colour), 1.0)
            colours.append(colour)
            outputs.frame(fbo, i)
            time.sleep(0.05)                # the sender takes each frame before the next
        report = outputs.close()
        assert report["test"]["sent"] + report["test"]["dropped"] == 5
        assert [i for i, _ in received] == sorted(i for i, _ in received)
        for index, frame in received:
            w, h = (8, 6) if index < 3 else (4, 4)
            assert frame.shape == (h, w, 4)
            assert np.abs(frame[..., :3].astype(int) - colours[index]).max() <= 1
    finally:
        ctx.release()


# -- argument checks (everywhere) -------------------------------------------------------------------

def run_cli(*argv, capsys) -> tuple[int, str]:
    code = cli_main(["live", "--headless", *argv])
    return code, capsys.readouterr().err.strip()


def test_v4l2_arguments_say_what_is_wrong(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(O.sys, "platform", "linux")
    code, err = run_cli("--v4l2", str(tmp_path / "x"), capsys=capsys)
    assert code == 1 and err.splitlines() == [
        f"phosphene: error: --v4l2 {tmp_path / 'x'}: not a video device path (/dev/videoN)"]

    missing = tmp_path / "no-module"
    with pytest.raises(O.VideoOutputError, match="v4l2loopback kernel module is not loaded"):
        O.check_v4l2("/dev/video7", module=missing)

    module = tmp_path / "module"
    module.mkdir()
    free = next(f"/dev/video{n}" for n in range(60, 100) if not os.path.exists(f"/dev/video{n}"))
    with pytest.raises(O.VideoOutputError, match="no such device"):
        O.check_v4l2(free, module=module)


def test_v4l2_elsewhere_than_linux_is_one_line(monkeypatch):
    monkeypatch.setattr(O.sys, "platform", "darwin")
    with pytest.raises(O.VideoOutputError, match=r"Linux only \(on macOS: --syphon NAME\)"):
        O.check_v4l2("/dev/video0")


def test_syphon_and_spout_are_platform_checked(capsys, monkeypatch):
    monkeypatch.setattr(O.sys, "platform", "linux")
    code, err = run_cli("--syphon", "show", capsys=capsys)
    assert code == 1 and err == "phosphene: error: --syphon: Syphon exists on macOS only"
    code, err = run_cli("--spout", "show", capsys=capsys)
    assert code == 1 and err == "phosphene: error: --spout: Spout exists on Windows only"


def test_ndi_without_the_package_says_how_to_install(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "NDIlib", None)      # import NDIlib -> ImportError
    code, err = run_cli("--ndi", "stage", capsys=capsys)
    assert code == 1
    assert err == ("phosphene: error: NDI output needs ndi-python: "
                   "pip install 'phosphene[ndi]'")


def test_a_preset_can_name_its_ndi_source():
    from phosphene.live.runtime.display import video_outputs
    from phosphene.live.show.presets import Preset

    base = {"name": "p", "keyframes": [{"seed": 1}]}
    preset = Preset.model_validate({**base, "ndi": {"name": "stage left"}})
    assert video_outputs(EngineOptions(), preset).ndi_name == "stage left"
    assert video_outputs(EngineOptions(ndi="cli"), preset).ndi_name == "cli"
    assert video_outputs(EngineOptions(), Preset.model_validate(base)).any is False
    with pytest.raises(ValueError):
        Preset.model_validate({**base, "ndi": {"name": ""}})
