"""``phosphene render``: an audio file (or a recorded set) to a video, a PNG sequence or a still.

Heavy imports happen inside the handler.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from phosphene.commands._args import UsageError, add_device_option, canvas_size


def register(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument("--size", type=canvas_size, metavar="WxH",
                   help="output size (default: the preset's output)")
    p.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    p.add_argument("--start", type=float, default=0.0, metavar="S",
                   help="first second of the audio to render (the analysis still starts at 0, "
                   "so the picture is the same as in a full render)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds to render (default: to the end)")
    p.add_argument("--batch", type=int, default=4, metavar="N",
                   help="generator frames per batch (default 4; larger is faster on a GPU)")
    add_device_option(p)
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
    p.add_argument("--cluster", metavar="ADDR",
                   help="render chunks of frames on Ray workers: local[:N] (a Ray runtime "
                   "here with N workers), auto (the cluster this machine joined) or "
                   "ray://HOST:PORT; the frames are the same as a local render's "
                   "(needs phosphene[cluster])")
    p.add_argument("--chunk-seconds", type=float, default=2.0, metavar="S",
                   help="--cluster: video seconds per chunk of work (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace) -> None:
    """The combinations of inputs and outputs that make sense (before anything is loaded)."""
    if args.replay and args.audio:
        raise UsageError("give either AUDIO or --replay DIR, not both")
    if not args.replay and not args.audio:
        raise UsageError("give an AUDIO file to render (or --replay DIR)")
    if args.replay and args.preset:
        raise UsageError("--replay uses the recorded preset; --preset cannot change it")
    if args.output is None and args.frames is None:
        raise UsageError("say where to write: -o OUT.mp4 (or -o frame.png with --still, "
                         "or --frames DIR)")
    if args.still is not None:
        if args.output is None or Path(args.output).suffix.lower() != ".png":
            raise UsageError("--still T writes a PNG: give -o frame.png")
    elif args.output is not None and Path(args.output).suffix.lower() != ".mp4":
        raise UsageError(f"-o {args.output}: the video is an MP4, name it OUT.mp4")
    if args.cluster and args.still is not None:
        raise UsageError("--still renders one frame here; --cluster is for videos")


def run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    if args.cluster:
        # before anything is loaded: a bad address or a missing Ray costs nothing
        from phosphene.cluster import preflight

        preflight(args.cluster)
    # start-up time: the offline renderer loads torch
    from phosphene.live.runtime.offline import (OfflineRender, RenderSettings, check_writable,
                                                render_still, render_video)
    from phosphene.live.runtime.session import source_from_preset, source_from_recording

    # before anything is loaded or rendered: a path we cannot write costs nothing
    if args.output is not None:
        check_writable(args.output)
    if args.frames is not None:
        check_writable(args.frames, directory=True)
    if args.replay:
        scene, audio = source_from_recording(args.replay, args.model)
    else:
        scene, audio = source_from_preset(args.preset, args.model), Path(args.audio)

    settings = RenderSettings(size=args.size, fps=args.fps, start_s=args.start,
                              duration_s=args.duration, batch=args.batch, device=args.device,
                              preview=args.preview, fit=args.fit, crf=args.crf,
                              progress=not args.no_progress)
    # on a cluster the workers make the frames: the driver's copy (timing, size, audio, and
    # the show for a chain drawn here) needs no GPU
    job = OfflineRender(audio, scene, settings if not args.cluster
                        else dataclasses.replace(settings, device="cpu"))
    w, h = job.size
    if args.still is not None:
        render_still(job, args.still, Path(args.output))
        print(f"wrote {args.output} ({w}x{h}, t={args.still:g} s)")
        return 0
    print(f"rendering {audio} -> {args.output or args.frames}: {job.n_frames} frames at "
          f"{w}x{h}, {float(job.fps):g} fps, model {scene.model_source} on "
          f"{f'cluster {args.cluster}' if args.cluster else job.device}, "
          f"preset {scene.preset.name}" + (f", {len(scene.events)} recorded events"
                                           if args.replay else ""), file=sys.stderr)
    output = Path(args.output) if args.output else None
    frames_dir = Path(args.frames) if args.frames else None
    if args.cluster:
        from phosphene.live.runtime.cluster_render import render_on_cluster  # Ray: optional

        result = render_on_cluster(job, audio, output, frames_dir, args.cluster,
                                   device=args.device,
                                   chunk_frames=max(1, round(args.chunk_seconds * float(job.fps))))
    else:
        result = render_video(job, output, frames_dir)
    where = ", ".join(str(x) for x in (args.output, args.frames) if x)
    if result.interrupted:
        print(f"interrupted: kept {result.frames} frames ({result.duration_s:.2f} s) in {where}",
              file=sys.stderr)
        return 130
    print(f"wrote {where}: {result.frames} frames, {result.duration_s:.2f} s")
    return 0
