"""``phosphene live``: the show (microphone or a file in, picture out, OSC/MIDI control).

Heavy imports (torch, moderngl, sounddevice) happen inside the handler.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from phosphene.commands._args import canvas_size, host_port, port, positive_float
from phosphene.errors import PhospheneError

log = logging.getLogger(__name__)

KEYS_HELP = ("keys in the window: f fullscreen, Esc/q quit, o overlay, space next keyframe, "
             "backspace previous keyframe, c capture keyframe, t tap tempo, "
             "right/left next/previous preset, b blackout on/off (fades to black, stops "
             "clips), p panic (black at once, clips stopped, effects back to the preset's; "
             "b brings the picture back), z freeze the picture on/off")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "live", help="perform: microphone (or a file) in, picture out, OSC/MIDI control",
        description="Run the live show: the audio input is analysed, the preset's director "
        "drives the generator's latents, the effect chain reacts to every onset, and the "
        "picture goes to a window (or headless). Control it with OSC (`phosphene osc --list`), "
        "MIDI and keys. " + KEYS_HELP + ".",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="default",
                   help="a shipped preset name or a path to a .yaml preset (hot-reloaded on save)")
    p.add_argument("--model", default=None,
                   help="generator to use instead of the preset's (builtin:abstract, a "
                   "checkpoint file, URL or zoo name)")
    p.add_argument("--device", default=None, help="torch device for the generator: cpu, cuda, "
                   "cuda:1, mps (default: auto = CUDA if present, else MPS, else CPU)")
    p.add_argument("--input", default=None, metavar="DEV",
                   help="audio input device: index or part of its name (`phosphene devices`); "
                   "default: the system's")
    p.add_argument("--output", default=None, metavar="DEV",
                   help="audio output for clips (and --audio-file): index, part of a name, or "
                   "'none'; default: the system's when there is something to play")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="input sample rate in Hz (default: the device's)")
    p.add_argument("--audio-file", type=Path, default=None, metavar="F",
                   help="play this audio file in real time instead of listening to the input")
    p.add_argument("--bank", type=Path, default=None, metavar="DIR",
                   help="clip bank folder: /phosphene/clip/play NAME plays its clips")
    p.add_argument("--osc-host", default="127.0.0.1",
                   help="address to listen on for OSC (0.0.0.0 opens it to the network)")
    p.add_argument("--osc-port", type=port, default=9000, help="UDP port for OSC (0 = any free)")
    p.add_argument("--no-osc", action="store_true", help="do not listen for OSC")
    p.add_argument("--web", type=host_port, nargs="?", const="127.0.0.1:8080", default=None,
                   metavar="[HOST:]PORT",
                   help="serve the control page (faders, buttons and XY pads for the preset, "
                   "live status, a preview) on this address; --web alone: 127.0.0.1:8080. "
                   "Another host than loopback (0.0.0.0: the LAN) requires the token printed "
                   "at start")
    p.add_argument("--midi", default=None, metavar="PORT|all",
                   help="MIDI input port name, or 'all' (`phosphene devices` lists them)")
    p.add_argument("--midi-api", default=None, choices=("alsa", "jack", "coremidi", "winmm"),
                   help="MIDI system to use (default: the platform's)")
    p.add_argument("--link", action="store_true",
                   help="join the Ableton Link session: follow its tempo and beat phase; a "
                   "tapped tempo is sent to it (pip install 'phosphene[link]')")
    p.add_argument("--monitor", type=int, default=None, metavar="N",
                   help="monitor for the window / fullscreen (`phosphene devices`)")
    p.add_argument("--fullscreen", action="store_true", help="start fullscreen")
    p.add_argument("--fit", choices=("letterbox", "crop", "stretch"), default="letterbox",
                   help="how the canvas fills the window or screen: letterbox (all of it, bars "
                   "where the shapes differ), crop (fills it, cuts the overhang: a square "
                   "canvas on a 16:9 projector) or stretch")
    p.add_argument("--overlay", action="store_true",
                   help="start with the overlay shown (input meter, tempo and beat, preset and "
                   "keyframe, OSC/MIDI activity, MIDI learn, warnings; `o` toggles it)")
    p.add_argument("--display", choices=("process", "thread"), default="process",
                   help="where the display draws: its own process (default: OpenGL waits can "
                   "never stall the audio or the generator) or a thread of the engine's "
                   "process (no frame copies; for a GPU where the effects cost little)")
    p.add_argument("--ndi", default=None, metavar="NAME",
                   help="send the final picture (after the effects) as an NDI source of this "
                   "name (needs pip install 'phosphene[ndi]'; a preset's ndi: {name: ...} "
                   "does the same)")
    p.add_argument("--v4l2", default=None, metavar="/dev/videoN",
                   help="send the final picture to this v4l2loopback virtual camera (Linux; "
                   "needs the v4l2loopback kernel module and pip install 'phosphene[v4l2]')")
    p.add_argument("--syphon", default=None, metavar="NAME",
                   help="send the final picture as a Syphon server (macOS; syphon-python)")
    p.add_argument("--spout", default=None, metavar="NAME",
                   help="send the final picture as a Spout sender (Windows; SpoutGL)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="compiled live synthesis (torch.compile; a CUDA graph on a GPU), built "
                   "in the background while the show starts eager, swapped in once it agrees "
                   "with eager (default: the preset's generator.compile, auto = on CUDA and "
                   "on a CPU with a C++ compiler; the environment's PHOSPHENE_COMPILE=off|on "
                   "overrides the preset)")
    p.add_argument("--prepare", action="store_true",
                   help="build the compiled live synthesis of the preset's model now and exit: "
                   "run it once at soundcheck (a first compile takes minutes on a laptop CPU) "
                   "and the show starts compiled from the cache")
    p.add_argument("--headless", action="store_true",
                   help="no window: render off screen (EGL), e.g. for a test run or a server")
    p.add_argument("--size", type=canvas_size, default=None, metavar="WxH",
                   help="canvas size (default: the preset's output size)")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="display rate when headless, or in a window on a monitor that reports "
                   "no refresh rate (default: the preset's; otherwise a window follows the "
                   "monitor's refresh)")
    p.add_argument("--duration", type=positive_float, default=None, metavar="S",
                   help="stop after S seconds of audio")
    p.add_argument("--report", type=Path, default=None, metavar="run.json",
                   help="write the run report (frames, fps and frame times, audio overflows, "
                   "onsets and their latency, OSC/MIDI counts, errors, final parameters)")
    p.add_argument("--record", type=Path, default=None, metavar="DIR",
                   help="record the set (input audio + every control event) into a new "
                   "folder, for `phosphene render --replay DIR`")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace):
    """The engine's options from ``phosphene live``'s parsed command line."""
    # start-up time: the engine loads torch
    from phosphene.live.runtime.engine import EngineOptions

    if args.duration is None and args.report is not None and args.audio_file is None:
        log.info("no --duration: the run (and its report) ends when you quit")
    return EngineOptions(
        preset=args.preset, model=args.model, input=args.input, output=args.output,
        sample_rate=args.sample_rate, bank=args.bank, osc_host=args.osc_host,
        osc_port=None if args.no_osc else args.osc_port, midi=args.midi, midi_api=args.midi_api,
        link=args.link,
        monitor=args.monitor, fullscreen=args.fullscreen, fit=args.fit, headless=args.headless,
        duration_s=args.duration, audio_file=args.audio_file, report=args.report,
        record=args.record, device=args.device, size=args.size, fps=args.fps,
        overlay=args.overlay, compile=args.compile, display=args.display, web=args.web,
        ndi=args.ndi, v4l2=args.v4l2, syphon=args.syphon, spout=args.spout)


def run(args: argparse.Namespace) -> int:
    if args.prepare:
        return prepare(args)
    # start-up time: the engine loads torch
    from phosphene.live.runtime.engine import Engine

    if args.bank is not None and not args.bank.is_dir():
        raise PhospheneError(f"--bank {args.bank}: no such folder")
    if args.audio_file is not None and not args.audio_file.is_file():
        raise PhospheneError(f"--audio-file {args.audio_file}: no such file")
    # the video outputs' packages, platform and device, before the model loads (one line)
    from phosphene.render.outputs import VideoOutputSpec, check_outputs

    check_outputs(VideoOutputSpec(args.ndi, args.v4l2, args.syphon, args.spout))
    engine = Engine(options_from_args(args))
    # SIGTERM (a service manager, a test harness) ends the show like q does: report written
    previous = signal.signal(signal.SIGTERM, lambda *_: engine.stop()) \
        if _main_thread() else None
    try:
        report = engine.run()
    except KeyboardInterrupt:
        engine.stop()
        report = engine.report()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    frames = report.get("frames", {})
    print(f"phosphene live: {frames.get('presented', 0)} frames shown "
          f"({frames.get('fps') or 0:.1f} fps), {frames.get('generated', 0)} generated, "
          f"{report.get('onsets', {}).get('detected', 0)} onsets"
          + (f"; report: {args.report}" if args.report else ""), file=sys.stderr)
    # the last line says why the show ended; a fault (not a quit, the duration or the end of
    # the file) exits non-zero so a wrapper script or a service manager notices
    ended = report.get("ended") or {"reason": "set-up did not finish", "clean": False}
    print(f"phosphene live: show ended: {ended['reason']}", file=sys.stderr)
    return 0 if ended.get("clean") else 1


def prepare(args: argparse.Namespace) -> int:
    """``--prepare``: the compiled synthesis into the cache, then exit (0: it compiled)."""
    # start-up time: it loads torch
    from phosphene.live.runtime.prepare import prepare_compiled_synthesis

    done = prepare_compiled_synthesis(args.preset, args.model, args.device)
    if done["compiled"]:
        print(f"phosphene live --prepare: {done['model']} on {done['device']} compiled in "
              f"{done['seconds']:.0f} s ({done['reason']}); the show starts with it",
              file=sys.stderr)
        return 0
    print(f"phosphene live --prepare: {done['model']} on {done['device']} stays eager: "
          f"{done['reason']}", file=sys.stderr)
    return 1


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
