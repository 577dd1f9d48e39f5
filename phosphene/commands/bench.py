"""``phosphene bench analyzer|onsets|latency|render-offline|render|generator|gpu|soak|realtime|
motion``: this machine.

Every benchmark prints its figures; none is a test (docs/benchmarks.md keeps the results).
Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from phosphene.commands._args import (add_device_option, add_subcommands, any_sizes,
                                      canvas_size, positive_float, positive_int_list,
                                      precisions)
from phosphene.commands.effects import DEFAULT_CHAIN, pattern_frame
from phosphene.errors import PhospheneError


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="measure speed on this machine")
    sub = add_subcommands(bench, dest="bench_command", metavar="WHAT")

    p = sub.add_parser(
        "analyzer", help="microseconds per hop of the audio analyzer",
        description="Time the streaming analyzer per hop (256 and 512 samples) and compare "
        "with librosa's onset_strength on the same audio; prints a Markdown table.")
    p.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (48000)")
    p.add_argument("--seconds", type=positive_float, default=20.0,
                   help="audio length to time (20)")
    p.set_defaults(func=run_analyzer)

    p = sub.add_parser(
        "onsets", help="onset F-measure on an annotated corpus, beside librosa and aubio",
        description="Run the streaming analyzer (causal, as phosphene analyze and live) on "
        "every file of an onset corpus made by tools/make_onset_corpus.py, once per onset "
        "detector, beside librosa's offline onset_detect and aubio's aubioonset; print "
        "mir_eval F-measure, precision and recall at +-50 ms and +-25 ms per target group, "
        "family and degradation as Markdown tables.")
    p.add_argument("--corpus", type=Path, default=Path("~/.cache/phosphene/onset-corpus"),
                   help="the corpus directory, holding index.json "
                   "(~/.cache/phosphene/onset-corpus)")
    p.add_argument("--split", default="test", choices=("train", "validation", "test", "all"),
                   help="which split to score (test)")
    p.add_argument("--detectors", nargs="+", default=None, metavar="NAME",
                   help="phosphene:<onset_detector>, librosa, aubio (default: every phosphene "
                   "detector, librosa, and aubio when aubioonset is installed)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write every file's scores as JSON")
    p.set_defaults(func=run_onsets)

    p = sub.add_parser(
        "latency", help="onset-to-frame latency of the live engine (effects and GAN path)",
        description="Run the live engine headless on a click track played in real time and "
        "measure, for every click, the time from the click's sample to the first displayed "
        "frame that shows it: the effects path (a flash mapped to onsets) and the GAN path "
        "(a generator frame made from a request after the click). Prints a Markdown table.")
    p.add_argument("--model", default="builtin:abstract", help="generator to use")
    add_device_option(p, default=None, help="torch device (default: cpu)")
    p.add_argument("--size", type=canvas_size, default=(512, 512), metavar="WxH",
                   help="canvas size")
    p.add_argument("--fps", type=positive_float, default=60.0, help="display rate")
    p.add_argument("--clicks", type=int, default=12, help="number of clicks")
    p.add_argument("--interval", type=positive_float, default=0.6,
                   help="seconds between clicks")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=run_latency)

    p = sub.add_parser(
        "render-offline", help="offline render speed: frames/s and multiple of real time",
        description="Render a synthetic audio file end to end (analyzer, show, batched "
        "generation, EGL effects, H.264 encoding) and report frames per second and the "
        "multiple of real time.")
    p.add_argument("--model", default="builtin:abstract")
    p.add_argument("--config-f", type=int, default=None, metavar="RES",
                   help="instead of --model: a StyleGAN2 config-f network at RES (512, 1024) "
                   "with random weights -- the cost of a real checkpoint of that size")
    p.add_argument("--size", type=canvas_size, default="256x256",
                   help="output size (default 256x256)")
    p.add_argument("--seconds", type=positive_float, default=5.0,
                   help="audio length (default 5)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batch sizes to time")
    add_device_option(p)
    p.add_argument("--preset", default="default")
    p.set_defaults(func=run_render_offline)

    p = sub.add_parser(
        "render", help="effect chain cost per frame (headless EGL)",
        description="Milliseconds per frame of the effect chain at several output sizes, on a "
        "headless EGL context, plus frame upload and readback.")
    p.add_argument("--sizes", type=any_sizes, default="1280x720,1920x1080",
                   help="comma-separated WxH list")
    p.add_argument("--frames", type=int, default=30, help="frames timed per size")
    p.add_argument("--frame-size", type=int, default=512, help="generator frame side in pixels")
    p.add_argument("--effects", nargs="+", default=DEFAULT_CHAIN, metavar="EFFECT",
                   help="the chain to time (default: every built-in effect)")
    p.set_defaults(func=run_render)

    p = sub.add_parser(
        "generator", help="generator frames/s per resolution, precision and batch size",
        description="Time the StyleGAN2 synthesis network (mapping excluded: it runs once per "
        "latent change, not per frame) at batch 1 and batch 8.")
    p.add_argument("--model", default=None,
                   help="a checkpoint / builtin:NAME (default: builtin-like nets per --size)")
    p.add_argument("--size", default="256", type=positive_int_list,
                   help="resolutions for random-weight nets, e.g. 256,512,1024 (default 256)")
    p.add_argument("--arch", choices=("builtin", "config-f"), default="builtin",
                   help="architecture of the random-weight nets: the builtin:abstract one "
                   "(default) or StyleGAN2 config-f (512 channels, num_fp16_res=4)")
    add_device_option(p)
    p.add_argument("--precision", default="fp32", type=precisions,
                   help="fp32, fp16 or fp32,fp16 (fp16: the highest resolutions, CUDA only)")
    p.add_argument("--batch", default="1,8", type=positive_int_list,
                   help="batch sizes (default 1,8)")
    p.add_argument("--frames", type=int, default=None,
                   help="timed batches per case (default: about two seconds' worth)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is faster when "
                   "other programs keep the cores busy)")
    p.add_argument("--compile", action="store_true",
                   help="also time compile_for_live (torch.compile / CUDA graphs) at batch 1")
    p.set_defaults(func=run_generator)

    p = sub.add_parser(
        "gpu", help="every GPU figure and check in one run: correctness, synthesis, live, offline",
        description="On the CUDA device: check CUDA vs CPU, fp16 vs fp32, graph/compiled vs "
        "eager and the frame upload path; time config-f 256/512/1024 and builtin:abstract "
        "(batch 1 and 8, eager/graph/compiled, fp32/fp16) against plain eager fp32; measure "
        "onset-to-frame latency through the headless engine, the effect chain at 1024x1024 and "
        "an offline 1024x1024 render. Each section is guarded and capped so the whole fits "
        "--budget-s; prints a Markdown table; exits 1 if a check fails.")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="OUT.json",
                   help="write the figures as JSON (rewritten after every section)")
    p.add_argument("--device", default="cuda", help="torch device (cuda, cuda:N; cpu only "
                   "with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: a check of the harness itself (runs on the CPU)")
    p.add_argument("--budget-s", type=positive_float, default=480.0,
                   help="seconds the whole run may take (480)")
    p.set_defaults(func=run_gpu)

    p = sub.add_parser(
        "motion", help="how much the picture travels through a song (liveliness figures)",
        description="Run each preset over AUDIO (the offline pipeline, small and fast) and "
        "report how its picture moves, measured on the generator's frames averaged over a "
        "second (a pulse on the beat cancels): the share of time it is near-static (moved "
        "less than 10%% of the distance between two random seeds' pictures in 4 s), the "
        "diversity of its compositions (mean pairwise distance of pictures every few "
        "seconds, relative to the random-seed distance), the correlation of its change with "
        "the music's, and, with known sections (AUDIO's .sections.json, as "
        "examples/make_song.py writes), whether the picture changes visibly within a bar of "
        "each section boundary. Prints a Markdown table.")
    p.add_argument("audio", type=Path, metavar="AUDIO")
    p.add_argument("--preset", nargs="+", default=["default"], metavar="P",
                   help="presets to measure (default: default)")
    p.add_argument("--model", default=None, help="generator instead of the preset's")
    add_device_option(p, default="cpu", help="torch device (default: cpu)")
    p.add_argument("--size", type=canvas_size, default=(96, 96), metavar="WxH",
                   help="size of the finished frames for --sheet and --preview (96x96)")
    p.add_argument("--fps", type=positive_float, default=10.0, help="frames per second (10)")
    p.add_argument("--sections", type=Path, default=None, metavar="JSON",
                   help="section boundaries (default: AUDIO's .sections.json when there is one)")
    p.add_argument("--sheet", type=Path, default=None, metavar="PNG",
                   help="also write a contact sheet of the (first) preset's render")
    p.add_argument("--sheet-every", type=positive_float, default=4.0, metavar="S",
                   help="seconds between contact-sheet frames (4)")
    p.add_argument("--sheet-columns", type=int, default=9, help="contact-sheet columns (9)")
    p.add_argument("--preview", type=Path, default=None, metavar="WEBP|GIF",
                   help="also write an animated preview of the (first) preset's render")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write the figures as JSON")
    p.set_defaults(func=run_motion)

    p = sub.add_parser(
        "soak", help="a long live show with cues: memory slope, threads, frame times, errors",
        description="Run the live engine headless for MINUTES with music looping into the "
        "input (played to --play-to; on a machine without a sound card, a PulseAudio null sink "
        "whose monitor is the default source), OSC cues every few seconds, a preset switch "
        "every 30 s and a clip every 20 s. Samples memory and threads every 10 s; prints the "
        "RSS slope (MB/h), thread counts, frame time p50/p99, thread restarts and errors.")
    p.add_argument("--minutes", type=positive_float, default=60.0, help="how long (60)")
    _add_show_options(p)
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write the samples and the summary as JSON")
    p.set_defaults(func=run_soak)

    p = sub.add_parser(
        "realtime", help="does the show keep up while it draws: overflows, audio age, "
        "generator rate",
        description="Run the live engine headless for SECONDS with music looping into the "
        "input (as bench soak) and nothing else; report input overflows, seconds analysed per "
        "wall second, the age of analysed audio, the generator's rate against its standalone "
        "rate, and the display's rate.")
    p.add_argument("--seconds", type=positive_float, default=60.0, help="how long (60)")
    _add_show_options(p)
    p.add_argument("--display", choices=("process", "thread"), default="process",
                   help="where the display draws (as phosphene live --display)")
    add_device_option(p)
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write the summary as JSON")
    p.set_defaults(func=run_realtime)


def _add_show_options(p: argparse.ArgumentParser) -> None:
    """What the live-show benchmarks (soak, realtime) share: the music looped into which
    input through which output, the canvas and the preset."""
    p.add_argument("--music", type=Path, default=None,
                   help="audio to loop (default: the bundled examples/demo.flac)")
    p.add_argument("--input", default=None, help="input device (default: the default input)")
    p.add_argument("--play-to", default=None,
                   help="output device that feeds the input (default: the default output)")
    p.add_argument("--size", type=canvas_size, default=None, metavar="WxH",
                   help="canvas size (default: the preset's)")
    p.add_argument("--preset", default="default")


def _music(args: argparse.Namespace) -> Path:
    music = args.music or Path(__file__).resolve().parents[2] / "examples" / "demo.flac"
    if not music.is_file():
        raise PhospheneError(f"--music {music}: no such file")
    return music


# -- analyzer and latency -----------------------------------------------------------------------

def run_analyzer(args: argparse.Namespace) -> int:
    # start-up time: the analyzer loads numpy and scipy
    from phosphene.live.analysis.bench import format_table, run_bench

    rows = run_bench(sample_rate=args.rate, seconds=args.seconds)
    print(format_table(rows, args.rate, args.seconds))
    return 0


def run_onsets(args: argparse.Namespace) -> int:
    import sys

    # start-up time: the bench loads the analyzer (numpy, scipy) and mir_eval
    from phosphene.live.analysis.onset_bench import (costs_of, default_detector_names,
                                                     format_cost, format_report, load_corpus,
                                                     run_onset_bench)

    corpus = load_corpus(args.corpus.expanduser(), args.split)
    names = args.detectors or default_detector_names()
    rows = run_onset_bench(corpus, names,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_report(rows, corpus, names))
    if any(n.startswith("phosphene:") for n in names):
        print("\n" + format_cost(costs_of(names)))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def run_latency(args: argparse.Namespace) -> int:
    # start-up time: the engine loads torch
    from phosphene.live.runtime.bench_latency import format_table, run_latency_bench

    result = run_latency_bench(model=args.model, device=args.device, size=args.size,
                               fps=args.fps, clicks=args.clicks, interval_s=args.interval)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    return 0


# -- offline render -----------------------------------------------------------------------------

def run_render_offline(args: argparse.Namespace) -> int:
    import tempfile
    import time

    import numpy as np
    import soundfile as sf

    # start-up time: the offline renderer loads torch
    from phosphene.live.runtime.offline import OfflineRender, RenderSettings, render_video
    from phosphene.live.runtime.session import source_from_preset

    sr = 48000
    t = np.arange(int(args.seconds * sr)) / sr
    # a kick-like click train over a soft chord: onsets and level for the show to follow
    audio = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 330 * t)
    for onset in np.arange(0.25, args.seconds, 0.5):
        i = int(onset * sr)
        n = min(2400, len(audio) - i)
        audio[i:i + n] += 0.8 * np.exp(-np.arange(n) / 300.0) * np.sin(2 * np.pi * 60 * t[:n])
    network, label = None, args.model
    if args.config_f is not None:
        import torch

        # torch: only for --config-f
        from phosphene.models.bench import config_f
        from phosphene.models.stylegan2 import Generator

        torch.manual_seed(0)
        network = Generator(config_f(args.config_f)).eval().requires_grad_(False)
        label = f"config-f@{args.config_f} (random weights)"
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "bench.wav"
        sf.write(wav, audio.astype(np.float32), sr)
        for batch in args.batch:
            scene = source_from_preset(args.preset, args.model)
            settings = RenderSettings(size=args.size, fps=args.fps, batch=batch,
                                      device=args.device, progress=False)
            job = OfflineRender(wav, scene, settings, generator=network)
            start, cpu_start = time.perf_counter(), time.process_time()
            result = render_video(job, Path(tmp) / "bench.mp4", None)
            elapsed = time.perf_counter() - start
            cpu_ms = 1000.0 * (time.process_time() - cpu_start) / result.frames
            fps = result.frames / elapsed
            print(f"{label} {job.size[0]}x{job.size[1]} on {job.device}, batch {batch}: "
                  f"{result.frames} frames in {elapsed:.2f} s = {fps:.1f} frames/s, "
                  f"{result.duration_s / elapsed:.2f}x real time at {args.fps:g} fps "
                  f"(CPU time of all threads: {cpu_ms:.0f} ms/frame)")
    return 0


# -- effect chain -------------------------------------------------------------------------------

def run_render(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    # start-up time: the effect chain loads numpy (moderngl once drawing)
    from phosphene.render.chain import EffectChain
    from phosphene.render.context import create_headless_context, describe
    from phosphene.render.readback import AsyncReadback

    ctx = create_headless_context()
    print(f"renderer: {describe(ctx)}")
    print(f"chain: {', '.join(args.effects)} (+ output); generator frame "
          f"{args.frame_size}x{args.frame_size} uint8, {args.frames} frames per size")
    frame = pattern_frame(args.frame_size, args.frame_size, 0.0)
    float_frame = (frame.transpose(2, 0, 1)[None].astype(np.float32) / 127.5) - 1.0
    # "cpu ms" is CPU time of all our threads (llvmpipe rasterises on several) per frame: on a
    # shared machine it stays put when other jobs slow the wall clock down.
    print(f"{'output':>10}  {'chain ms':>9}  {'chain cpu ms':>12}  {'upload ms':>9}  "
          f"{'float->u8 ms':>12}  {'readback ms':>11}  {'total ms':>8}")
    for w, h in args.sizes:
        chain = EffectChain.from_names(ctx, args.effects, size=(w, h))
        readback = AsyncReadback(ctx, w, h)
        chain.set_params({"feedback.decay": 0.8, "flash.amount": 0.2, "color.hue": 30.0,
                          "mirror.segments": 6.0, "chroma.amount": 0.01, "vignette.amount": 0.5}
                         if all(e in chain.effect_names for e in DEFAULT_CHAIN) else {})
        chain.push_frame(frame)
        for _ in range(3):  # warm-up: shader compilation and first allocations
            chain.render(0.0)
        ctx.finish()

        def timed(fn: Any) -> float:
            return timed_both(fn)[0]

        def timed_both(fn: Any) -> tuple[float, float]:
            start, cpu_start = time.perf_counter(), time.process_time()
            for i in range(args.frames):
                fn(i)
            ctx.finish()
            return (1000.0 * (time.perf_counter() - start) / args.frames,
                    1000.0 * (time.process_time() - cpu_start) / args.frames)

        chain_ms, chain_cpu_ms = timed_both(lambda i: chain.render(i / 60.0))
        upload_ms = timed(lambda i: chain.push_frame(frame))
        convert_ms = timed(lambda i: chain.frames.converter(float_frame))
        readback_ms = timed(lambda i: readback.submit(chain.canvas))
        readback.drain()

        def whole(i: int) -> None:
            chain.push_frame(frame)
            readback.submit(chain.render(i / 60.0))

        total_ms = timed(whole)
        readback.drain()
        print(f"{w:>5}x{h:<4}  {chain_ms:9.2f}  {chain_cpu_ms:12.2f}  {upload_ms:9.2f}  "
              f"{convert_ms:12.2f}  {readback_ms:11.2f}  {total_ms:8.2f}")
        readback.release()
        chain.release()
    return 0


# -- generator ----------------------------------------------------------------------------------

def run_generator(args: argparse.Namespace) -> int:
    # start-up time: torch
    from phosphene.models.bench import run_generator_bench
    from phosphene.models.device import pick_device

    device = pick_device(args.device)
    if "fp16" in args.precision and device.type != "cuda":
        raise PhospheneError(f"--precision fp16 needs a CUDA device (got {device}); "
                             "the fp16 path is CUDA-only")
    run_generator_bench(model=args.model, sizes=args.size, arch=args.arch, device=device,
                        precisions=args.precision, batches=args.batch, frames=args.frames,
                        include_compiled=args.compile, threads=args.threads)
    return 0


# -- gpu ------------------------------------------------------------------------------------------

def run_gpu(args: argparse.Namespace) -> int:
    import sys

    # only this handler raises it (kept out of the shared import block above)
    from phosphene.commands._args import UsageError

    if args.device.split(":")[0] != "cuda" and not (args.device == "cpu" and args.quick):
        raise UsageError(f"bench gpu --device {args.device}: only cuda[:N], or cpu with --quick "
                         "(the harness check with tiny sizes)")
    # start-up time: the bench loads torch, the engine and the renderer
    from phosphene.live.runtime.bench_gpu import check_device, format_markdown, run_gpu_bench

    check_device(args.device, args.quick)      # no CUDA: one line, exit 1, before any work
    result = run_gpu_bench(args.device, quick=args.quick, budget_s=args.budget_s,
                           output=args.output,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_markdown(result))
    return 0 if result["all_checks_pass"] else 1


# -- real time ------------------------------------------------------------------------------------

def run_realtime(args: argparse.Namespace) -> int:
    # start-up time: the engine loads torch
    from phosphene.live.runtime.bench_realtime import format_summary, run_realtime_bench

    music = _music(args)
    summary = run_realtime_bench(args.seconds, music=music, input=args.input,
                                 play_to=args.play_to, preset=args.preset, size=args.size,
                                 display=args.display, device=args.device,
                                 progress=lambda line: print(line, flush=True))
    print(format_summary(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


# -- motion ---------------------------------------------------------------------------------------

def run_motion(args: argparse.Namespace) -> int:
    # start-up time: the offline renderer loads torch
    from phosphene.live.runtime.motion import (contact_sheet, format_table, measure_motion,
                                               write_preview)

    if not args.audio.is_file():
        raise PhospheneError(f"{args.audio}: no such file")
    sections = args.sections
    if sections is None:
        guess = args.audio.with_name(args.audio.name.split(".")[0] + ".sections.json")
        sections = guess if guess.is_file() else None
    elif not sections.is_file():
        raise PhospheneError(f"--sections {sections}: no such file")
    results, seed_dist = [], None
    for i, preset in enumerate(args.preset):
        first = i == 0
        result, kept = measure_motion(
            args.audio, preset, model=args.model, size=args.size, fps=args.fps,
            device=args.device, sections=sections, seed_dist=seed_dist,
            keep_every_s=args.sheet_every if first and args.sheet else None,
            keep_all=first and args.preview is not None)
        seed_dist = result.seed_distance if args.model else None
        results.append(result)
        if first and args.sheet is not None:
            from PIL import Image

            step = max(1, int(round(args.sheet_every * args.fps)))
            frames = kept[::step] if args.preview is not None else kept
            args.sheet.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(contact_sheet(frames, args.sheet_columns)).save(args.sheet)
        if first and args.preview is not None:
            write_preview(kept, args.preview, args.fps)
        print(f"{preset}: seed distance {result.seed_distance:.3f}", flush=True)
    print(format_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps([r.summary() for r in results], indent=2))
    return 0


# -- soak -----------------------------------------------------------------------------------------

def run_soak(args: argparse.Namespace) -> int:
    # start-up time: the engine loads torch
    from phosphene.live.runtime.soak import run_soak as soak

    music = _music(args)
    result = soak(args.minutes, music=music, input=args.input, play_to=args.play_to,
                  size=args.size, preset=args.preset,
                  progress=lambda line: print(line, flush=True))
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps({"summary": summary, "samples": result.samples},
                                        indent=2))
    return 0 if not summary["errors"] and not summary["thread_restarts"] else 1

