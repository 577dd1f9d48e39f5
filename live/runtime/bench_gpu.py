"""``phosphene bench gpu``: every GPU figure and check in one command, within a time budget.

Four sections, run in order, each guarded (a failure is recorded and the next still runs) and
each given a share of what is left of the budget (time a section does not use passes on):

1. correctness: the synthesis checks of ``models.bench_gpu`` (CUDA vs CPU fp32, fp16 vs fp32,
   CUDA graph vs eager, compiled vs eager) and the frame upload path (the device conversion and
   the GL texture it fills) against a host copy of the same frame;
2. synthesis: ms/frame of config-f 256/512/1024 and builtin:abstract at batch 1 and 8, eager /
   graph / compiled, fp32 / fp16, each with its ratio to the plain eager fp32 reference;
3. live: onset -> frame latency through the real engine (headless, ``bench_latency``) at 1024²,
   and the full effect chain's frames/s at 1024² output fed from a device frame;
4. offline: an offline render (analyzer, show, batched generation, effects, H.264) of config-f
   1024 at 1024² batch 8, as a multiple of real time.

The JSON is rewritten after every section, so a run cut short still leaves what it measured.
``quick`` swaps in tiny sizes so the whole harness runs on a CPU in a test.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phosphene.errors import PhospheneError
from phosphene.models.bench_gpu import SynthesisBench, bench_nets

# The render, engine and offline modules are imported inside their sections: on a bare GPU
# machine a missing dependency (moderngl, PortAudio, soundfile, av) then fails its section
# only, and the synthesis figures, which need torch alone, still come out.

SCHEMA = "phosphene-bench-gpu/1"
# each section's share of what is left of the budget when it starts
SHARES = {"correctness": 0.2, "synthesis": 0.45, "live": 0.2, "offline": 0.15}
# the least a section needs to be worth starting (full run; quick runs take what is left)
MINIMUM_S = {"correctness": 20.0, "synthesis": 30.0, "live": 30.0, "offline": 20.0}
UPLOAD_TOLERANCE_LEVELS = 1   # float rounding at a .5 boundary may differ by one 8-bit level
# the effect parameters `phosphene bench render` sets: every stage does real work
CHAIN_PARAMS = {"feedback.decay": 0.8, "flash.amount": 0.2, "color.hue": 30.0,
                "mirror.segments": 6.0, "chroma.amount": 0.01, "vignette.amount": 0.5}


def check_device(device: str, quick: bool):
    """The torch device to bench, or a one-line PhospheneError why not."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise PhospheneError("bench gpu: no CUDA device here (torch "
                                 f"{torch.__version__} sees none); --device cpu --quick runs "
                                 "the harness on the CPU with tiny sizes")
        return dev
    if dev.type == "cpu" and quick:
        return dev
    raise PhospheneError(f"bench gpu --device {device}: only CUDA, or cpu with --quick (the "
                         "harness check with tiny sizes)")


class Budget:
    def __init__(self, total_s: float):
        self.total_s = total_s
        self.start = time.monotonic()

    def left(self) -> float:
        return self.total_s - (time.monotonic() - self.start)


def _machine(device) -> dict[str, Any]:
    info = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    tf32_cudnn=torch.backends.cudnn.allow_tf32)
    else:
        info["threads"] = torch.get_num_threads()
    return info


# -- section 1: correctness --------------------------------------------------------------------

def _late_copy(frame, side_stream: bool):
    """(copy, ready event or None): ``frame`` rewritten behind a GPU busy-wait, on another CUDA
    stream (handed over with its event) or on the current one (no event: the consumer must
    wait for the current stream). A consumer that does not wait for the producer reads the
    stale contents (-1: black) and fails the pixel comparison."""
    current = torch.cuda.current_stream(frame.device)
    late = torch.full_like(frame, -1.0)
    producer = current
    if side_stream:
        producer = torch.cuda.Stream(frame.device)
        producer.wait_stream(current)            # after the fill above
        late.record_stream(producer)
    with torch.cuda.stream(producer):
        if hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(50_000_000)        # tens of ms of GPU cycles before the write
        late.copy_(frame)
    if not side_stream:
        return late, None
    ready = torch.cuda.Event()
    ready.record(producer)
    return late, ready


def upload_check(frame, size: int) -> dict[str, Any]:
    """The frame path to the screen against a host copy converted with numpy: the device
    conversion (pinned asynchronous copy on CUDA) within UPLOAD_TOLERANCE_LEVELS, and every GL
    texture filled from it exactly: the uploader's own choice of path (CUDA-GL interop where it
    is available), the pinned copy with interop off, and on CUDA a frame still being written on
    another stream, handed over with its event or left on the current stream."""
    # here, not at the top: a missing GL/audio dependency fails this section only
    from phosphene.render.context import create_headless_context, describe
    from phosphene.render.upload import PATH_INTEROP, FrameConverter, FrameUploader

    host = FrameConverter()(frame.detach().float().cpu().numpy()).astype(np.int16)
    device_pixels = FrameConverter()(frame).copy()
    conv_diff = int(np.abs(device_pixels.astype(np.int16) - host).max())
    on_cuda = frame.device.type == "cuda"
    ctx = create_headless_context()
    try:
        def texture_diff(frame_in, ready=None, interop=True) -> tuple[int, str, str | None]:
            uploader = FrameUploader(ctx, interop=interop)
            try:
                uploader.push(frame_in, ready=ready)
                h, w, c = device_pixels.shape
                texture = np.frombuffer(uploader.newest.read(alignment=1),
                                        np.uint8).reshape(h, w, c)
                diff = int(np.abs(texture.astype(np.int16)
                                  - device_pixels.astype(np.int16)).max())
                return diff, uploader.path, uploader.interop_unavailable
            finally:
                uploader.release()

        tex_diff, path, why_not = texture_diff(frame)
        diffs = {path: tex_diff}
        if on_cuda:
            if path == PATH_INTEROP:
                pinned_diff, pinned_path, _ = texture_diff(frame, interop=False)
                diffs[pinned_path] = pinned_diff
            late, ready = _late_copy(frame, side_stream=True)
            diffs[f"{path}, frame from another stream + event"] = texture_diff(late, ready)[0]
            late, _ = _late_copy(frame, side_stream=False)
            diffs[f"{path}, frame still queued on the current stream"] = texture_diff(late)[0]
            late, ready = _late_copy(frame, side_stream=True)
            pixels = FrameConverter()(late, ready).astype(np.int16)
            diffs["pinned-async-copy to host, frame from another stream + event"] = int(
                np.abs(pixels - device_pixels.astype(np.int16)).max())
        renderer = describe(ctx)
    finally:
        ctx.release()
    worst = max(diffs.values())
    ok = conv_diff <= UPLOAD_TOLERANCE_LEVELS and worst == 0
    return {"status": "pass" if ok else "fail", "frame": f"{size}x{size} float on {frame.device}",
            "max_abs_diff": conv_diff, "tolerance": UPLOAD_TOLERANCE_LEVELS,
            "texture_max_abs_diff": worst, "texture_tolerance": 0, "units": "8-bit levels",
            "texture_diffs": diffs, "renderer": renderer, "path": path,
            "interop": "used" if path == PATH_INTEROP else f"not available: {why_not}"}


def run_correctness(synth, device, quick: bool, deadline: float, progress) -> dict[str, Any]:
    checks = synth.checks(deadline)
    size = 64 if quick else 1024
    try:
        gen = torch.Generator(device="cpu").manual_seed(7)
        # a smooth field beyond [-1, 1] at the edges: exercises clipping and every level
        frame = (torch.rand([1, 3, size, size], generator=gen) * 2.4 - 1.2).to(device)
        checks["upload_vs_host_copy"] = upload_check(frame, size)
    except Exception as exc:  # noqa: BLE001 - recorded
        checks["upload_vs_host_copy"] = {"status": "error",
                                         "reason": f"{type(exc).__name__}: {exc}"[:500]}
    r = checks["upload_vs_host_copy"]
    progress(f"  check upload_vs_host_copy: {r['status']}"
             + (f" (max diff {r['max_abs_diff']} levels, texture {r['texture_max_abs_diff']}; "
                f"path {r['path']}, interop {r['interop']})"
                if "max_abs_diff" in r else f" ({r.get('reason', '')})"))
    failed = [name for name, c in checks.items() if c["status"] in ("fail", "error")]
    return {"checks": checks, "failed": failed}


# -- section 2: synthesis ----------------------------------------------------------------------

def run_synthesis(synth, quick: bool, deadline: float, progress) -> dict[str, Any]:
    return synth.timings(deadline, batches=[1, 2] if quick else [1, 8])


# -- section 3: live ---------------------------------------------------------------------------

def effect_chain_fps(device, size: int, frames: int) -> dict[str, Any]:
    """Frames/s of the full built-in effect chain at size² output, fed a size² float frame on
    ``device`` each frame (conversion + upload + chain + readback), as the live display does."""
    # here, not at the top: a missing GL/audio dependency fails this section only
    from phosphene.render.chain import EffectChain
    from phosphene.render.context import create_headless_context, describe
    from phosphene.render.effects import BUILTIN_ORDER
    from phosphene.render.readback import AsyncReadback

    frame = (torch.rand([1, 3, size, size], generator=torch.Generator().manual_seed(3)) * 2 - 1
             ).to(device)
    ctx = create_headless_context()
    try:
        chain = EffectChain.from_names(ctx, list(BUILTIN_ORDER), size=(size, size))
        chain.set_params({k: v for k, v in CHAIN_PARAMS.items() if k in chain.params()})
        readback = AsyncReadback(ctx, size, size)
        chain.push_frame(frame)
        for _ in range(3):                 # shader compilation and first allocations
            chain.render(0.0)
        ctx.finish()

        def timed(fn) -> float:
            start = time.perf_counter()
            for i in range(frames):
                fn(i)
            ctx.finish()
            return 1000.0 * (time.perf_counter() - start) / frames

        chain_ms = timed(lambda i: chain.render(i / 60.0))
        upload_ms = timed(lambda i: chain.push_frame(frame))

        def whole(i: int) -> None:
            chain.push_frame(frame)
            readback.submit(chain.render(i / 60.0))

        total_ms = timed(whole)
        readback.drain()
        renderer, names = describe(ctx), chain.effect_names
        readback.release()
        chain.release()
    finally:
        ctx.release()
    return {"renderer": renderer, "output": f"{size}x{size}", "chain": names,
            "frame": f"{size}x{size} float on {device}", "frames": frames,
            "chain_ms": round(chain_ms, 2), "upload_ms": round(upload_ms, 2),
            "total_ms": round(total_ms, 2), "frames_per_s": round(1000.0 / total_ms, 1)}


def run_live(device, quick: bool, deadline: float, progress) -> dict[str, Any]:
    # here, not at the top: a missing GL/audio dependency fails this section only
    from phosphene.live.runtime.bench_latency import run_latency_bench

    out: dict[str, Any] = {}
    size = 64 if quick else 1024
    clicks, interval = (3, 0.4) if quick else (12, 0.6)
    latency_cost_s = clicks * interval + (10 if quick else 20)   # the run plus start-up
    if getattr(device, "type", str(device)) == "cuda" and not quick:
        latency_cost_s += 60          # the show's synthesis compiles (CUDA graph) before it
    if time.monotonic() + latency_cost_s > deadline:
        out["latency"] = {"status": "skipped", "reason": "time cap reached"}
    else:
        progress(f"  latency: engine headless, builtin:abstract on {device}, {size}x{size}, "
                 f"{clicks} clicks")
        try:
            out["latency"] = {"status": "ok", **run_latency_bench(
                model="builtin:abstract", device=str(device), size=(size, size), fps=60.0,
                clicks=clicks, interval_s=interval)}
            r = out["latency"]
            progress(f"  latency: GAN path p50 {r['gan_path_ms']['p50']} ms, effects path p50 "
                     f"{r['effects_path_ms']['p50']} ms, display {_fmt(r['fps'])} fps")
        except Exception as exc:  # noqa: BLE001 - recorded
            out["latency"] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500]}
            progress(f"  latency: error {out['latency']['reason']}")
    if time.monotonic() > deadline:
        out["effect_chain"] = {"status": "skipped", "reason": "time cap reached"}
    else:
        try:
            out["effect_chain"] = {"status": "ok",
                                   **effect_chain_fps(device, size, 5 if quick else 60)}
            progress(f"  effect chain at {size}x{size}: {out['effect_chain']['total_ms']} ms/frame "
                     f"({out['effect_chain']['frames_per_s']} frames/s)")
        except Exception as exc:  # noqa: BLE001 - recorded
            out["effect_chain"] = {"status": "error",
                                   "reason": f"{type(exc).__name__}: {exc}"[:500]}
            progress(f"  effect chain: error {out['effect_chain']['reason']}")
    out["realtime"] = {"status": "skipped",
                       "reason": "needs an audio input with music playing into it (PulseAudio "
                       "or a sound card); run `phosphene bench realtime` on such a machine"}
    return out


# -- section 4: offline ------------------------------------------------------------------------

def bench_audio(seconds: float, sr: int = 48000) -> np.ndarray:
    """A kick-like click train over a soft chord: onsets and level for the show to follow
    (the same signal as ``phosphene bench render-offline``)."""
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 330 * t)
    for onset in np.arange(0.25, seconds, 0.5):
        i = int(onset * sr)
        n = min(2400, len(audio) - i)
        audio[i:i + n] += 0.8 * np.exp(-np.arange(n) / 300.0) * np.sin(2 * np.pi * 60 * t[:n])
    return audio.astype(np.float32)


def run_offline(device, quick: bool, deadline: float, progress) -> dict[str, Any]:
    # here, not at the top: a missing GL/audio dependency fails this section only
    import soundfile as sf
    from phosphene.live.runtime.offline import OfflineRender, RenderSettings, render_video
    from phosphene.live.runtime.session import source_from_preset

    label, build = bench_nets(quick)[0 if quick else 2]     # quick: tiny; else config-f@1024
    size, batch, seconds, fps = (64, 2, 1.0, 30.0) if quick else (1024, 8, 4.0, 30.0)
    progress(f"  offline: {label}, {size}x{size}, batch {batch}, {seconds:g} s at {fps:g} fps")
    with tempfile.TemporaryDirectory(prefix="phosphene-bench-gpu-") as tmp:
        wav = Path(tmp) / "bench.wav"
        sf.write(wav, bench_audio(seconds), 48000)
        job = OfflineRender(wav, source_from_preset("default", None),
                            RenderSettings(size=(size, size), fps=fps, batch=batch,
                                           device=str(device), progress=False),
                            generator=build())
        start = time.perf_counter()
        result = render_video(job, Path(tmp) / "bench.mp4", None)
        elapsed = time.perf_counter() - start
    out = {"status": "ok", "net": label, "output": f"{size}x{size}", "batch": batch,
           "fps_video": fps, "frames": result.frames, "seconds_audio": result.duration_s,
           "wall_s": round(elapsed, 2), "frames_per_s": round(result.frames / elapsed, 1),
           "x_real_time": round(result.duration_s / elapsed, 2), "device": str(job.device)}
    progress(f"  offline: {out['frames']} frames in {out['wall_s']} s = {out['frames_per_s']} "
             f"frames/s, {out['x_real_time']}x real time")
    return out


# -- the run -----------------------------------------------------------------------------------

def run_gpu_bench(device: str = "cuda", *, quick: bool = False, budget_s: float = 480.0,
                  output: Path | None = None,
                  progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every section within ``budget_s``; returns (and writes to ``output``) the result."""
    budget = Budget(budget_s)
    dev = check_device(device, quick)
    result: dict[str, Any] = {
        "schema": SCHEMA, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick, "budget_s": budget_s, **_machine(dev), "sections": {}}
    synth = SynthesisBench(dev, quick, progress=progress)

    def save() -> None:
        result["elapsed_s"] = round(time.monotonic() - budget.start, 1)
        if output is not None:
            output.write_text(json.dumps(result, indent=1, default=str))

    runners = {
        "correctness": lambda d: run_correctness(synth, dev, quick, d, progress),
        "synthesis": lambda d: run_synthesis(synth, quick, d, progress),
        "live": lambda d: run_live(dev, quick, d, progress),
        "offline": lambda d: run_offline(dev, quick, d, progress),
    }
    names = list(runners)
    for i, name in enumerate(names):
        left = budget.left()
        remaining_shares = sum(SHARES[n] for n in names[i:])
        cap = left * SHARES[name] / remaining_shares
        progress(f"[{name}] {cap:.0f} s of {left:.0f} s left")
        if left <= 0 or (not quick and cap < MINIMUM_S[name]):
            section = {"status": "skipped",
                       "reason": f"budget: {max(left, 0):.0f} s left, the section needs "
                       f"{MINIMUM_S[name]:.0f} s"}
        else:
            start = time.monotonic()
            try:
                section = {"status": "ok", **runners[name](start + cap)}
            except Exception as exc:  # noqa: BLE001 - recorded; the next section runs
                section = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500],
                           "traceback": traceback.format_exc()[-2000:]}
                progress(f"[{name}] error: {section['reason']}")
            section["elapsed_s"] = round(time.monotonic() - start, 1)
            section["cap_s"] = round(cap, 1)
        result["sections"][name] = section
        save()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    correctness = result["sections"]["correctness"]
    result["checks_failed"] = correctness.get("failed", ["correctness section did not run"]
                                              if correctness["status"] != "ok" else [])
    result["all_checks_pass"] = not result["checks_failed"]
    save()
    return result


# -- the table ---------------------------------------------------------------------------------

def _fmt(x: Any, spec: str = ".3g") -> str:
    return "–" if x is None else format(x, spec) if isinstance(x, (int, float)) else str(x)


def format_markdown(r: dict[str, Any]) -> str:
    s = r["sections"]
    lines = [f"## phosphene bench gpu: {r.get('gpu', r['device'])} ({r['machine']}; torch "
             f"{r['torch']}{'; quick' if r['quick'] else ''}), {r.get('elapsed_s')} s", ""]

    def skipped_line(name: str) -> None:
        sec = s.get(name, {})
        if sec.get("status") != "ok":
            lines.extend([f"{name}: {sec.get('status', 'missing')} ({sec.get('reason', '')})",
                          ""])

    lines += ["### Correctness", ""]
    skipped_line("correctness")
    checks = s.get("correctness", {}).get("checks", {})
    if checks:
        lines += ["| check | result | max abs diff | tolerance | note |", "|---|---|---|---|---|"]
        for name, c in checks.items():
            note = c.get("reason") or c.get("precision") or c.get("units") or ""
            lines.append(f"| {name} | {c['status']} | {_fmt(c.get('max_abs_diff'))} | "
                         f"{_fmt(c.get('tolerance'))} | {note} |")
        lines.append("")

    lines += ["### Synthesis (ms/frame; speed-up against plain eager fp32 in this run)", ""]
    skipped_line("synthesis")
    rows = s.get("synthesis", {}).get("rows", [])
    if rows:
        lines += ["| net | batch | variant | precision | ms/frame | frames/s | x reference |",
                  "|---|---|---|---|---|---|---|"]
        for row in rows:
            variant = row["variant"] + ("" if row.get("compiled", True) else " (fell back)")
            lines.append(f"| {row['net']} | {row['batch']} | {variant} | {row['precision']} | "
                         f"{row['ms_per_frame']:.2f} | {row['frames_per_s']:.1f} | "
                         f"{_fmt(row['speedup_vs_reference'], '.2f')} |")
        lines.append("")
    not_run = s.get("synthesis", {}).get("skipped", [])
    if not_run:
        lines.append(f"not timed: {len(not_run)} cases (reasons in the JSON)")
        lines.append("")

    lines += ["### Live and offline", ""]
    skipped_line("live")
    skipped_line("offline")
    live = s.get("live", {})
    lat, fx, off = live.get("latency", {}), live.get("effect_chain", {}), s.get("offline", {})
    lines += ["| figure | value |", "|---|---|"]
    if lat.get("status") == "ok":
        lines.append(f"| onset -> GAN frame p50 / max ({lat['size']}, {lat['device']}) | "
                     f"{_fmt(lat['gan_path_ms']['p50'])} / {_fmt(lat['gan_path_ms']['max'])} ms |")
        lines.append(f"| onset -> effects frame p50 / max | {_fmt(lat['effects_path_ms']['p50'])}"
                     f" / {_fmt(lat['effects_path_ms']['max'])} ms |")
        lines.append(f"| live display fps (target {lat['fps_target']:g}) | {_fmt(lat['fps'])} |")
    else:
        lines.append(f"| latency | {lat.get('status')}: {lat.get('reason', '')} |")
    if fx.get("status") == "ok":
        lines.append(f"| full effect chain at {fx['output']} ({fx['renderer']}) | "
                     f"{fx['total_ms']} ms/frame = {fx['frames_per_s']} frames/s |")
    else:
        lines.append(f"| effect chain | {fx.get('status')}: {fx.get('reason', '')} |")
    if off.get("status") == "ok":
        lines.append(f"| offline render {off['net']} {off['output']} batch {off['batch']} | "
                     f"{off['frames_per_s']} frames/s = {off['x_real_time']}x real time at "
                     f"{off['fps_video']:g} fps |")
    lines += ["", "all checks pass" if r.get("all_checks_pass")
              else f"CHECKS FAILED: {', '.join(r.get('checks_failed', []))}"]
    return "\n".join(lines)
