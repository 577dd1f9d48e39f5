"""``phosphene render`` (an audio file or a recorded set to a video, a PNG sequence or a still)
and ``phosphene bench render-offline``. Heavy imports happen inside the handlers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from phosphene.errors import PhospheneError


def register_render(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "render", help="render an audio file (or a recorded set) to a video, offline",
        description="Run the live pipeline over an audio file -- the same analyzer hops, "
        "preset, director and effects -- and write an H.264 MP4 with the audio, frame-exact "
        "with what `phosphene live` shows. Deterministic: the same inputs give the same "
        "frames. Ctrl-C stops and keeps a playable partial video.",
        epilog="examples:\n"
        "  phosphene render song.wav -o song.mp4 --preset default --size 1920x1080\n"
        "  phosphene render song.wav --still 12.5 -o frame.png\n"
        "  phosphene render --replay sets/friday -o friday.mp4 --size 3840x2160",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("audio", metavar="AUDIO", nargs="?",
                   help="audio file (WAV/FLAC/OGG, MP3 and others via FFmpeg); omit with --replay")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output .mp4 (or .png with --still)")
    p.add_argument("--preset", metavar="NAME|PATH",
                   help="shipped preset name or a .yaml path (default: default; with --replay: "
                   "the recorded one)")
    p.add_argument("--model", metavar="M", help="generator: builtin:abstract, a checkpoint "
                   "file, URL or zoo name (default: the preset's; with --replay: the recorded "
                   "one -- any model of the same latent size)")
    p.add_argument("--size", metavar="WxH", help="output size (default: the preset's output)")
    p.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    p.add_argument("--start", type=float, default=0.0, metavar="S",
                   help="first second of the audio to render (the analysis still starts at 0, "
                   "so the picture is the same as in a full render)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds to render (default: to the end)")
    p.add_argument("--batch", type=int, default=4, metavar="N",
                   help="generator frames per batch (default 4; larger is faster on a GPU)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--fit", choices=("letterbox", "crop", "stretch"), default="letterbox",
                   help="how the square generator frame fills the output (default letterbox)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (18)")
    p.add_argument("--preview", action="store_true",
                   help="fast draft: output scaled to fit 320 px, fastest encoder settings")
    p.add_argument("--frames", metavar="DIR",
                   help="also (or, without -o, only) write every frame as DIR/frame_NNNNNN.png")
    p.add_argument("--still", type=float, metavar="T",
                   help="write only the frame at T seconds, as the PNG named by -o")
    p.add_argument("--replay", metavar="DIR",
                   help="re-render a set recorded with `phosphene live --record DIR`")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_render)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PhospheneError(f"--size {text!r} must look like 1920x1080") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise PhospheneError(f"--size {text!r}: width and height must be 16..8192")
    return w, h


def _cmd_render(args: argparse.Namespace) -> int:
    from phosphene.render.offline import (OfflineRender, RenderSettings, render_still,
                                          render_video, scene_from_preset,
                                          scene_from_recording)

    if args.replay and args.audio:
        raise PhospheneError("give either AUDIO or --replay DIR, not both")
    if not args.replay and not args.audio:
        raise PhospheneError("give an AUDIO file to render (or --replay DIR)")
    if args.output is None and args.frames is None:
        raise PhospheneError("say where to write: -o OUT.mp4 (or -o frame.png with --still, "
                             "or --frames DIR)")
    if args.still is not None:
        if args.output is None or Path(args.output).suffix.lower() != ".png":
            raise PhospheneError("--still T writes a PNG: give -o frame.png")
    elif args.output is not None and Path(args.output).suffix.lower() != ".mp4":
        raise PhospheneError(f"-o {args.output}: the video is an MP4, name it OUT.mp4")

    if args.replay:
        scene, audio = scene_from_recording(args.replay, args.model)
        if args.preset:
            raise PhospheneError("--replay uses the recorded preset; --preset cannot change it")
    else:
        scene, audio = scene_from_preset(args.preset, args.model), Path(args.audio)

    settings = RenderSettings(size=_parse_size(args.size), fps=args.fps, start_s=args.start,
                              duration_s=args.duration, batch=args.batch, device=args.device,
                              preview=args.preview, fit=args.fit, crf=args.crf,
                              progress=not args.no_progress)
    job = OfflineRender(audio, scene, settings)
    w, h = job.size
    if args.still is not None:
        render_still(job, args.still, Path(args.output))
        print(f"wrote {args.output} ({w}x{h}, t={args.still:g} s)")
        return 0
    print(f"rendering {audio} -> {args.output or args.frames}: {job.n_frames} frames at "
          f"{w}x{h}, {float(job.fps):g} fps, model {scene.model_source} on {job.device}, "
          f"preset {scene.preset.name}" + (f", {len(scene.events)} recorded events"
                                           if args.replay else ""), file=sys.stderr)
    result = render_video(job, Path(args.output) if args.output else None,
                          Path(args.frames) if args.frames else None)
    where = ", ".join(str(x) for x in (args.output, args.frames) if x)
    if result.interrupted:
        print(f"interrupted: kept {result.frames} frames ({result.duration_s:.2f} s) in {where}",
              file=sys.stderr)
        return 130
    print(f"wrote {where}: {result.frames} frames, {result.duration_s:.2f} s")
    return 0


# -- bench -----------------------------------------------------------------------------------
def register_bench_offline(bench_subparsers: Any) -> None:
    p = bench_subparsers.add_parser(
        "render-offline", help="offline render speed: frames/s and multiple of real time",
        description="Render a synthetic audio file end to end (analyzer, show, batched "
        "generation, EGL effects, H.264 encoding) and report frames per second and the "
        "multiple of real time.")
    p.add_argument("--model", default="builtin:abstract")
    p.add_argument("--config-f", type=int, default=None, metavar="RES",
                   help="instead of --model: a StyleGAN2 config-f network at RES (512, 1024) "
                   "with random weights -- the cost of a real checkpoint of that size")
    p.add_argument("--size", default="256x256", help="output size (default 256x256)")
    p.add_argument("--seconds", type=float, default=5.0, help="audio length (default 5)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batch sizes to time")
    p.add_argument("--device", default="auto")
    p.add_argument("--preset", default="default")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    import tempfile
    import time

    import numpy as np
    import soundfile as sf

    from phosphene.render.offline import (OfflineRender, RenderSettings, render_video,
                                          scene_from_preset)

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

        from phosphene.models.bench import config_f
        from phosphene.models.stylegan2 import Generator

        torch.manual_seed(0)
        network = Generator(config_f(args.config_f)).eval().requires_grad_(False)
        label = f"config-f@{args.config_f} (random weights)"
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "bench.wav"
        sf.write(wav, audio.astype(np.float32), sr)
        for batch in args.batch:
            scene = scene_from_preset(args.preset, args.model)
            settings = RenderSettings(size=_parse_size(args.size), fps=args.fps, batch=batch,
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
