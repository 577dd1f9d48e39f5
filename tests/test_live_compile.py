"""The compiled live synthesis by default (issue 12): who decides, and the background compile
that swaps a checked compiled network in while the show runs eager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from live_engine_helpers import (EngineRun, random_generator, write_clicks, write_presets)
from phosphene.errors import PhospheneError
from phosphene.live.runtime import live_compile
from phosphene.live.runtime.engine import EngineOptions
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.runtime.live_compile import BackgroundCompile, compile_decision
from phosphene.live.show.director import LatentRequest
from phosphene.models.stylegan2 import GeneratorConfig
from phosphene.models.stylegan2.fast import warmup_noise

HAS_COMPILER = live_compile.cpp_compiler() is not None


def noisy_generator(resolution: int = 16):
    config = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=resolution, channel_base=64,
                             channel_max=16)
    return random_generator(config, seed=5, noise_strength=0.5, bias_scale=0.1)


def test_who_decides_whether_the_live_synthesis_is_compiled(monkeypatch):
    monkeypatch.delenv("PHOSPHENE_COMPILE", raising=False)
    # an explicit flag wins over everything
    assert compile_decision(True, False, "mps")[0] is True
    assert compile_decision(False, "auto", "cuda")[0] is False
    # then the environment, then the preset
    monkeypatch.setenv("PHOSPHENE_COMPILE", "off")
    decided, why = compile_decision(None, True, "cuda")
    assert decided is False and "PHOSPHENE_COMPILE=off" in why
    monkeypatch.setenv("PHOSPHENE_COMPILE", "on")
    assert compile_decision(None, False, "cpu")[0] is True
    monkeypatch.delenv("PHOSPHENE_COMPILE")
    assert compile_decision(None, False, "cuda")[0] is False
    assert compile_decision(None, True, "cpu")[0] is True
    # auto: CUDA yes, MPS no, the CPU when a C++ compiler is there
    assert compile_decision(None, "auto", "cuda")[0] is True
    decided, why = compile_decision(None, "auto", "mps")
    assert decided is False and "mps" in why
    monkeypatch.setattr(live_compile, "cpp_compiler", lambda: None)
    decided, why = compile_decision(None, "auto", "cpu")
    assert decided is False and "C++ compiler" in why
    monkeypatch.setattr(live_compile, "cpp_compiler", lambda: "/usr/bin/g++")
    decided, why = compile_decision(None, "auto", "cpu")
    assert decided is True and "/usr/bin/g++" in why
    monkeypatch.setenv("PHOSPHENE_COMPILE", "sometimes")
    with pytest.raises(PhospheneError, match="PHOSPHENE_COMPILE: must be one of auto, on, off"):
        compile_decision(None, "auto", "cpu")


def _request(G, seed: int, strength: float) -> LatentRequest:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = G.mapping(torch.randn(1, G.z_dim, generator=gen), None)[0].numpy()
    return LatentRequest(sample_index=0, w=w, w_raw=w, truncation_psi=1.0,
                         noise_strength=strength, noise_seed=seed, keyframe=0)


@pytest.mark.skipif(not HAS_COMPILER, reason="torch.compile's CPU backend needs a C++ compiler")
def test_the_background_compile_swaps_in_a_network_that_matches_eager_on_one_graph():
    G = noisy_generator()
    generator = FrameGenerator(G, "cpu", max_batch=1)
    eager = FrameGenerator(G, "cpu", max_batch=1)
    requests = [_request(G, s, strength) for s, strength in ((1, 1.0), (2, 0.5), (3, 0.0))]
    job = BackgroundCompile(generator, "test").start()
    assert job.info["state"] == "compiling"
    # the show goes on meanwhile: frames come from the eager network
    during = generator.generate(requests[0])
    assert torch.equal(during, eager.generate(requests[0]))
    assert job.wait(300), "the compile did not finish"
    assert job.info["compiled"] is True, job.info
    assert job.info["state"] == "compiled" and job.info["compile_s"] >= 0
    live = generator.synthesis
    assert live is not G.synthesis and live.static_noise
    live.stance = "fail_on_recompile"    # a guard the live inputs fail would raise here
    for request in requests:     # noise on, half, off: all on the graph compiled at start
        torch.testing.assert_close(generator.generate(request), eager.generate(request),
                                   atol=1e-4, rtol=1e-4)
    assert live.eager_calls == 0, "live frames did not match what was compiled"


def test_a_compile_that_fails_leaves_the_show_eager_and_says_why(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler today")

    monkeypatch.setattr(live_compile, "compile_for_live", broken)
    generator = FrameGenerator(noisy_generator(), "cpu", max_batch=1)
    synthesis = generator.synthesis
    job = BackgroundCompile(generator, "test").start()
    assert job.wait(60)
    assert job.info["compiled"] is False and job.info["state"] == "eager"
    assert "no compiler today" in job.info["reason"]
    assert generator.synthesis is synthesis


@pytest.mark.skipif(not HAS_COMPILER, reason="torch.compile's CPU backend needs a C++ compiler")
def test_a_live_show_starts_eager_and_reports_the_compiled_synthesis(tmp_path, monkeypatch):
    # a real compile into an empty cache, not a package an earlier test left (the first
    # picture must come before it)
    monkeypatch.setenv("PHOSPHENE_CACHE_DIR", str(tmp_path / "cache"))
    show_with_a_compile(tmp_path)


def show_with_a_compile(tmp_path):
    preset = write_presets(tmp_path / "presets")
    # long enough for a compile on a loaded 2-core machine (about a minute); stopped after it
    audio = write_clicks(tmp_path / "clicks.wav", [0.5 * k for k in range(1, 480)], 240.0)
    options = EngineOptions(preset=str(preset), audio_file=str(audio), output="none",
                            headless=True, osc_port=None, duration_s=240.0, compile=True)
    # another size than the tests above: a compile of its own, not one dynamo has cached
    with EngineRun(options, generator=noisy_generator(resolution=32)) as run:
        # the first picture came before any compile could finish
        assert run.engine.synthesis_compile.info["state"] == "compiling"
        assert run.engine.synthesis_compile.wait(230)
        assert not run.engine.stopping
        generated = run.engine.worker.generated
        deadline = run.engine.worker.generated + 5
        run.engine.worker.wait_for_frame(deadline, timeout=20)
        run.engine.stop()
        report = run.wait()
    synthesis = report["frames"]["synthesis"]
    assert synthesis["compiled"] is True and synthesis["state"] == "compiled", synthesis
    assert "--compile" in synthesis["why"]
    # built by a child process into the cache (aot.py), not compiled in the show's process
    assert "AOTInductor package" in synthesis["reason"] and "built in" in synthesis["reason"]
    assert list((tmp_path / "cache" / "compiled").glob("synthesis-*.pt2"))
    assert report["frames"]["generated"] > generated
    assert report["errors"] == []


def test_the_cpu_generator_leaves_a_core_for_the_show_unless_told_otherwise(monkeypatch):
    from phosphene.live.runtime import engine as engine_module

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(engine_module.os, "cpu_count", lambda: 4)
        torch.set_num_threads(4)
        engine_module.leave_a_core_for_the_display()
        assert torch.get_num_threads() == 3
        torch.set_num_threads(2)             # already fewer than the cores: left alone
        engine_module.leave_a_core_for_the_display()
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "4")   # the user's choice stays
        torch.set_num_threads(4)
        engine_module.leave_a_core_for_the_display()
        assert torch.get_num_threads() == 4
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(engine_module.os, "cpu_count", lambda: 1)
        engine_module.leave_a_core_for_the_display()
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not HAS_COMPILER, reason="torch.compile's CPU backend needs a C++ compiler")
def test_an_offline_render_compiles_its_batch_size_when_asked_and_not_on_a_cpu_by_default(
        tmp_path, monkeypatch):
    from phosphene.live.runtime.offline import OfflineRender, RenderSettings
    from phosphene.live.runtime.session import source_from_preset

    preset = write_presets(tmp_path / "presets")
    audio = write_clicks(tmp_path / "clicks.wav", [0.3, 0.9, 1.4], 2.0)
    G = noisy_generator(resolution=8)
    settings = RenderSettings(size=(16, 16), fps=8, progress=False, batch=3)
    monkeypatch.setenv("PHOSPHENE_COMPILE", "auto")
    job = OfflineRender(audio, source_from_preset(str(preset), None), settings, generator=G)
    assert job.synthesis_info["compiled"] is False and "eager on the CPU" in \
        job.synthesis_info["reason"]          # a CPU render stays eager unless asked
    requests = [state.request for _, state in job.states(0, job.n_frames)]
    eager = [job.generator.generate(requests[i:i + 3]) for i in range(0, len(requests), 3)]

    monkeypatch.setenv("PHOSPHENE_COMPILE", "on")
    job = OfflineRender(audio, source_from_preset(str(preset), None), settings, generator=G)
    assert job.synthesis_info["compiled"] is True, job.synthesis_info
    live = job.generator.synthesis
    live.stance = "fail_on_recompile"
    for k, i in enumerate(range(0, len(requests), 3)):   # the last, shorter batch runs eager
        torch.testing.assert_close(job.generator.generate(requests[i:i + 3]), eager[k],
                                   atol=1e-4, rtol=1e-4)
    assert live.eager_calls == (1 if len(requests) % 3 else 0)


def test_a_compiled_call_that_fails_falls_back_to_eager_for_good():
    from phosphene.models.stylegan2.fast import LiveSynthesis, input_signature

    G = noisy_generator()
    eager = FrameGenerator(G, "cpu", max_batch=1)
    live = LiveSynthesis(G, 1, "const", False)
    calls = []

    def broken(ws, mode, noise):
        calls.append(mode)
        raise RuntimeError("CUDA graph replay failed")

    # as if compiled for exactly the live path's inputs, then broken at run time
    request = _request(G, 1, 1.0)
    with torch.inference_mode():
        live._signature = input_signature(eager.ws([request]), "const",
                                          eager._noise_maps([request]))
    live._fn, live.compiled = broken, True
    generator = FrameGenerator(G, "cpu", max_batch=1, synthesis=live)
    for _ in range(2):
        assert torch.equal(generator.generate(request), eager.generate(request))
    assert calls == ["const"] and live.compiled is False
    assert "CUDA graph replay failed" in live.reason


def _running_builds(timeout: float = 60.0) -> list:
    """The compile child processes of this process, once there is one."""
    from phosphene.models.stylegan2 import aot

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with aot._children_lock:
            running = [p for p in aot._children if p.poll() is None]
        if running:
            return running
        time.sleep(0.05)
    raise AssertionError("no compile process started")


@pytest.mark.skipif(not HAS_COMPILER, reason="the CPU compile needs a C++ compiler")
def test_a_show_that_ends_mid_compile_leaves_no_compiler_running(tmp_path, monkeypatch):
    """The engine's teardown cancels a compile still running: its child process ends, no
    half-built package stays in the cache, and the report says the show ended first."""
    monkeypatch.setenv("PHOSPHENE_CACHE_DIR", str(tmp_path / "cache"))
    generator = FrameGenerator(noisy_generator(resolution=64), "cpu", max_batch=1)
    synthesis = generator.synthesis
    job = BackgroundCompile(generator, "test").start()
    child = _running_builds()[0]
    job.cancel()
    assert child.poll() is not None, "the compile process outlived the show"
    assert job.wait(60)
    assert job.info["state"] == "eager" and job.info["compiled"] is False
    assert job.info["reason"] == "the show ended before the compile finished"
    assert generator.synthesis is synthesis
    assert not list((tmp_path / "cache").rglob("*.pt2"))


@pytest.mark.skipif(not HAS_COMPILER, reason="the CPU compile needs a C++ compiler")
def test_a_compile_whose_show_was_killed_stops_too(tmp_path):
    """A show process killed outright (no teardown) leaves its compile child orphaned; the
    child notices and ends instead of compiling on for no one."""
    show = textwrap.dedent(f"""
        import sys, threading, time
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_live_compile import noisy_generator
        from phosphene.models.stylegan2 import aot

        G = noisy_generator(resolution=64)
        threading.Thread(target=aot.build_package, daemon=True, args=(
            G.synthesis, (1, G.num_ws, G.w_dim), "none", None, False, 1,
            Path({str(tmp_path / "pkg" / "synthesis-x.pt2")!r}))).start()
        while not aot._children:
            time.sleep(0.05)
        print(next(iter(aot._children)).pid, flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", show], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PHOSPHENE_CACHE_DIR":
                                               str(tmp_path / "cache")})
    try:
        child = int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child), "the compile process kept running after its show was killed"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not HAS_COMPILER, reason="the CPU compile needs a C++ compiler")
def test_the_compiled_synthesis_lets_other_threads_run_while_it_renders():
    """The show's analysis thread must run while a compiled frame renders (aot_runner.py:
    torch's own package loader holds the interpreter lock for the whole frame). Deterministic:
    with a switch interval of minutes, a thread waiting for the lock gets it only where its
    holder lets go. The main thread sleeps (letting go) and looks where the renderer was when
    it got the lock back: inside the foreign call (``LibraryRunner._render``) only if that
    call runs without the lock."""
    G = noisy_generator(resolution=16)
    live = compile_from_the_cache(G)
    call, noise = live._fn, warmup_noise(G, 1, torch.device("cpu"))
    with torch.inference_mode():
        ws = G.mapping.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1).clone()
    inputs = [ws, *call.weights(), *noise]
    done = threading.Event()

    def render() -> None:
        for _ in range(300):
            call.runner.run(list(inputs))
        done.set()

    seen = set()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(300.0)
    try:
        renderer = threading.Thread(target=render)
        renderer.start()
        while not done.is_set():
            frame = sys._current_frames().get(renderer.ident)
            while frame is not None:
                seen.add(frame.f_code.co_name)
                frame = frame.f_back
            time.sleep(0.0002)
        renderer.join()
    finally:
        sys.setswitchinterval(interval)
    assert "run" in seen, f"never saw the renderer in LibraryRunner.run: {seen}"
    assert "_render" in seen, "the renderer held the interpreter lock through every frame"


def compile_from_the_cache(G):
    from phosphene.models.stylegan2.fast import compile_for_live

    live = compile_for_live(G)
    assert live.compiled and "AOTInductor package" in live.reason, live.reason
    return live


@pytest.mark.skipif(not HAS_COMPILER, reason="the CPU compile needs a C++ compiler")
def test_prepare_at_soundcheck_then_the_show_starts_compiled(tmp_path):
    """``phosphene live --prepare`` builds the package the show will look up (same model,
    device and thread count): the show that follows loads it instead of compiling."""
    from phosphene.models.loading import save_generator

    model = save_generator(noisy_generator(resolution=16), tmp_path / "tiny.safetensors")
    preset = write_presets(tmp_path / "presets")
    env = {**os.environ, "PHOSPHENE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PHOSPHENE_COMPILE", None)        # the show decides as a performer's would: auto

    def phosphene(*args):
        return subprocess.run([sys.executable, "-m", "phosphene", *map(str, args)],
                              capture_output=True, text=True, timeout=600, env=env)

    prepared = phosphene("live", "--prepare", "--preset", preset, "--model", model)
    assert prepared.returncode == 0, prepared.stderr
    assert "compiled in" in prepared.stderr and "the show starts with it" in prepared.stderr
    assert len(list((tmp_path / "cache" / "compiled").glob("synthesis-*.pt2"))) == 1
    wav = write_clicks(tmp_path / "clicks.wav", [0.5, 1.5, 2.5, 3.5], duration_s=6.0)
    show = phosphene("live", "--headless", "--preset", preset, "--model", model,
                     "--audio-file", wav, "--output", "none", "--no-osc",
                     "--report", tmp_path / "run.json")
    assert show.returncode == 0, show.stderr
    synthesis = json.loads((tmp_path / "run.json").read_text())["frames"]["synthesis"]
    assert synthesis["state"] == "compiled", synthesis
    assert "from the cache" in synthesis["reason"]
    assert "auto: CPU with a C++ compiler" in synthesis["why"]


def test_the_build_process_takes_the_nice_value_it_is_given_not_more():
    """The show's compile thread runs at nice 10 and the build process it starts inherits
    that; the build sets its nice value (10) rather than adding to it (19: starved)."""
    script = ("import os; from phosphene.models.stylegan2.aot import _set_nice; "
              "_set_nice(10); print(os.getpriority(os.PRIO_PROCESS, 0))")
    inherited = subprocess.run(["nice", "-n", "10", sys.executable, "-c", script],
                               capture_output=True, text=True, check=True)
    assert inherited.stdout.strip() == "10"
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True)
    assert fresh.stdout.strip() == str(max(10, os.getpriority(os.PRIO_PROCESS, 0)))
