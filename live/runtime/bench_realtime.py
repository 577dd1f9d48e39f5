"""The real-time benchmark: does the live engine keep up with the music while it draws?

Music loops into the input (as in the soak: a PulseAudio null sink whose monitor is the
default source on a machine without a sound card), the default preset runs headless at its own
canvas, and nothing else happens. It reports what issue 18 asks of a show under load:

- audio: input overflows (blocks lost), seconds analysed per second of wall time, and the age
  of analysed audio (callback -> analysis done: p50/p99/max, hops older than 50 ms);
- generator: frames/s over the run, the lowest over any 5 s window, and the same generator's
  rate standalone in this process (no display, no audio) for comparison;
- display: frames/s, the time one frame takes to draw, the canvas scale the budget chose.

``phosphene bench realtime`` runs it; ``--display thread`` runs the display on a thread of the
engine's process instead (the old architecture), for comparison. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from phosphene.live.runtime.engine import (Engine, EngineOptions,
                                           leave_a_core_for_the_display)
from phosphene.live.runtime.live_compile import BackgroundCompile, compile_decision
from phosphene.live.runtime.session import (Session, analyzer_settings, open_generator,
                                            source_from_preset)
from phosphene.live.runtime.soak import MusicLoop, start_show

WINDOW_S = 5.0
STANDALONE_S = 3.0


def standalone_generator_fps(preset: str, device: str | None, sample_rate: int = 48000) -> float:
    """Frames/s of the preset's generator alone in this process, on the show's first
    request, with the thread count the engine uses."""
    source = source_from_preset(preset, None)
    generator, _ = open_generator(source.model_source, device or "auto")
    if generator.device.type == "cpu":
        leave_a_core_for_the_display()
    compile_it, why = compile_decision(None, source.preset.generator.compile,
                                       generator.device.type)
    if compile_it:      # as the show will run once its compile is in: the same synthesis
        BackgroundCompile(generator, why).start().wait()
    session = Session(source, sample_rate, generator, settings=analyzer_settings(source))
    request = session.show.state().request
    for _ in range(3):                                   # warm-up
        generator.generate(request)
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < STANDALONE_S:
        generator.generate(request)
        frames += 1
    return frames / (time.perf_counter() - start)


def run_realtime_bench(seconds: float, *, music: Path, input: str | None, play_to: str | None,
                       preset: str = "default", size: tuple[int, int] | None = None,
                       display: str = "process", device: str | None = None,
                       progress=print) -> dict[str, Any]:
    standalone = standalone_generator_fps(preset, device)
    progress(f"generator alone: {standalone:.1f} frames/s")
    options = EngineOptions(preset=preset, input=input, output="none", headless=True,
                            osc_port=None, size=size, duration_s=None, display=display,
                            device=device)
    engine = Engine(options)
    player = MusicLoop(music, play_to)
    player.stream.start()              # the music is already playing when the show opens
    samples: list[tuple[float, int]] = []                # (time, frames generated)
    thread, done = None, {}
    try:
        thread, done = start_show(engine, "realtime-engine")
        if engine.synthesis_compile is not None:
            # the figures are the compiled show's: count from when its synthesis is in
            progress("the show runs eager while its synthesis compiles in the background ...")
            while not engine.synthesis_compile.wait(1.0) and thread.is_alive():
                pass
            progress(f"live synthesis: {engine.synthesis_compile.info['reason']}")
        next_line = time.monotonic() + 10
        while thread.is_alive():
            now = time.monotonic()
            samples.append((now, engine.worker.generated))
            if now - samples[0][0] >= seconds:     # the show's audio figures span it all
                engine.stop("the benchmark's time was up")
            if now >= next_line:
                next_line += 10
                progress(f"{now - samples[0][0]:5.0f} s  generated {engine.worker.generated}  "
                         f"shown {engine.frame_times.count}")
            time.sleep(1.0)
    finally:
        player.stream.stop()
        player.stream.close()
        engine.stop()
        if thread is not None:
            thread.join(30)
    report = done.get("report", {})
    return summarize(report, samples, standalone, display)


def _lowest_window_fps(samples: list[tuple[float, int]]) -> float | None:
    lowest = None
    for i, (t0, n0) in enumerate(samples):
        for t1, n1 in samples[i + 1:]:
            if t1 - t0 >= WINDOW_S:
                fps = (n1 - n0) / (t1 - t0)
                lowest = fps if lowest is None else min(lowest, fps)
                break
    return lowest


def summarize(report: dict, samples: list[tuple[float, int]], standalone: float,
              display: str) -> dict[str, Any]:
    audio, frames = report.get("audio", {}), report.get("frames", {})
    shown = report.get("display", {})
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    generated_fps = (samples[-1][1] - samples[0][1]) / span if span > 0 else 0.0
    lowest = _lowest_window_fps(samples)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "display": display, "renderer": shown.get("renderer"),
        "canvas": shown.get("canvas"), "device": report.get("device"),
        "wall_s": round(report.get("wall_s", 0.0), 1),
        "audio": {"overflows": audio.get("overflows"), "losses": audio.get("losses"),
                  "seconds_analysed": round(audio.get("seconds_analysed", 0.0), 2),
                  "analysed_per_wall_s": round(audio.get("analysed_per_wall_s", 0.0), 4),
                  "age_ms": audio.get("age")},
        "generator": {"fps": round(generated_fps, 1),
                      "lowest_5s_fps": None if lowest is None else round(lowest, 1),
                      "standalone_fps": round(standalone, 1),
                      "share_of_standalone": round(generated_fps / standalone, 3)
                      if standalone else None,
                      "ms": frames.get("generator_ms")},
        "synthesis": frames.get("synthesis"),
        "display_fps": round(frames.get("fps") or 0.0, 1),
        "budget": shown.get("budget"),
        "ended": report.get("ended"),
    }


def format_summary(s: dict[str, Any]) -> str:
    a, g = s["audio"], s["generator"]
    age = a["age_ms"] or {}
    return "\n".join([
        f"real time under load ({s['machine']}; display in a {s['display']}, "
        f"{s['renderer']}; canvas {s['canvas']}; generator on {s['device']})",
        f"  audio: {a['overflows']} overflows, {a['analysed_per_wall_s']:.4f} s analysed per "
        f"wall second, age p50 {age.get('p50_ms')} / p99 {age.get('p99_ms')} / max "
        f"{age.get('max_ms')} ms, {age.get('older_than_50ms')} of {age.get('hops')} hops "
        f"older than 50 ms",
        f"  generator: {g['fps']} frames/s (lowest 5 s window {g['lowest_5s_fps']}), "
        f"standalone {g['standalone_fps']} -> {100 * (g['share_of_standalone'] or 0):.0f} %",
        f"  display: {s['display_fps']} frames/s, budget {s['budget']}",
        f"  live synthesis: {(s.get('synthesis') or {}).get('reason', 'eager')}"])
