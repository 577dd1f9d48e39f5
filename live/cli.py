"""Command-line entry points of the live area: ``phosphene devices``, ``phosphene analyze``,
``phosphene bench analyzer``. Heavy imports happen inside the handlers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from phosphene.errors import PhospheneError

# `phosphene devices` prints one section per entry: (title, function returning lines).
# Other parts of the live area (MIDI ports, monitors) append their own with
# ``add_device_section``.
DEVICE_SECTIONS: list[tuple[str, Callable[[], list[str]]]] = []


def add_device_section(title: str, lines: Callable[[], list[str]]) -> None:
    if all(t != title for t, _ in DEVICE_SECTIONS):
        DEVICE_SECTIONS.append((title, lines))


def _audio_device_lines() -> list[str]:
    from phosphene.live.devices import list_devices

    devices = list_devices()
    if not devices:
        return ["(none: PortAudio sees no audio devices — no sound card or sound server)"]
    lines = [f"{'idx':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'host API':<8}  name"]
    for d in devices:
        marks = "".join(m for m, on in (("<", d.is_default_input), (">", d.is_default_output))
                        if on)
        lines.append(f"{d.index:>3}  {d.max_input_channels:>3} {d.max_output_channels:>3}  "
                     f"{d.default_samplerate:>6.0f}  {d.hostapi:<8}  {d.name}"
                     f"{'  ' + marks if marks else ''}")
    lines.append("(< default input, > default output; pick one with its index or part of its "
                 "name)")
    return lines


add_device_section("Audio devices", _audio_device_lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("devices", help="list audio devices (and other I/O ports)",
                              description="List the audio input/output devices PortAudio sees "
                              "(index, name, channels, default sample rate) and the other "
                              "ports phosphene can use.")
    p.set_defaults(func=_cmd_devices)

    p = subparsers.add_parser(
        "analyze", help="run the live analyzer over an audio file",
        description="Run the same streaming analyzer the live mode uses over an audio file "
        "(WAV/FLAC/OGG via libsndfile, MP3 and others via FFmpeg) and print or plot what it "
        "hears. With no output option, prints a short summary.")
    p.add_argument("audio", metavar="AUDIO", help="audio file")
    p.add_argument("--onsets", action="store_true",
                   help="print onset times in seconds, one per line")
    p.add_argument("--beats", action="store_true",
                   help="print the tempo, then beat times in seconds, one per line")
    p.add_argument("--features", action="store_true",
                   help="print the per-hop feature table (tab-separated)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead (onsets, beats, tempo; the per-hop "
                   "frames too with --features or when no other option is given)")
    p.add_argument("--plot", metavar="OUT.png",
                   help="write a PNG of waveform, level, onset strength and onsets, bands, "
                   "tempo and beat grid")
    p.add_argument("--channel", type=int, default=None,
                   help="analyse one channel (0-based) instead of the mono mixdown")
    p.add_argument("--hop", type=int, default=None,
                   help="hop length in samples (default: the analyzer's, 256)")
    p.set_defaults(func=_cmd_analyze)


def register_bench(bench_subparsers) -> None:
    p = bench_subparsers.add_parser(
        "analyzer", help="microseconds per hop of the audio analyzer",
        description="Time the streaming analyzer per hop (256 and 512 samples) and compare "
        "with librosa's onset_strength on the same audio; prints a Markdown table.")
    p.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (48000)")
    p.add_argument("--seconds", type=float, default=20.0, help="audio length to time (20)")
    p.set_defaults(func=_cmd_bench)


def _cmd_devices(args: argparse.Namespace) -> int:
    for i, (title, lines) in enumerate(DEVICE_SECTIONS):
        if i:
            print()
        print(f"{title}:")
        try:
            body = lines()
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            body = [f"(unavailable: {exc})"]
        for line in body:
            print(f"  {line}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from phosphene.live.analyzer_settings import AnalyzerSettings
    from phosphene.live.offline import NUMERIC_FIELDS, FLAG_FIELDS, analyze_file

    try:
        settings = AnalyzerSettings(**({"hop_length": args.hop} if args.hop else {}))
    except ValueError as exc:
        raise PhospheneError(f"analyze: bad --hop: {exc.errors()[0]['msg']}") from None
    result = analyze_file(args.audio, settings, channel=args.channel)
    out = sys.stdout
    if args.plot:
        from phosphene.live.analysis_plot import plot_analysis

        plot_analysis(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        nothing_chosen = not (args.onsets or args.beats or args.features)
        doc = {"file": str(result.path), "sample_rate": result.sample_rate,
               "hop_length": result.hop_length,
               "latency_s": result.latency_samples / result.sample_rate,
               "onset_delay_s": result.onset_delay_samples / result.sample_rate,
               "tempo_bpm": round(result.tempo_bpm, 3)}
        if args.onsets or nothing_chosen:
            doc["onsets"] = [round(float(t), 6) for t in result.onset_times_s]
        if args.beats or nothing_chosen:
            doc["beats"] = [round(float(t), 6) for t in result.beat_times_s]
        if args.features or nothing_chosen:
            doc["frames"] = result.frame_records()
        json.dump(doc, out)
        out.write("\n")
        return 0
    if args.onsets:
        for t in result.onset_times_s:
            out.write(f"{t:.6f}\n")
    if args.beats:
        out.write(f"# tempo {result.tempo_bpm:.2f} BPM\n")
        for t in result.beat_times_s:
            out.write(f"{t:.6f}\n")
    if args.features:
        cols = ("time_s", *NUMERIC_FIELDS, *FLAG_FIELDS)
        out.write("\t".join(cols) + "\n")
        for rec in result.frame_records():
            out.write("\t".join("" if rec[c] is None else
                                (str(int(rec[c])) if isinstance(rec[c], bool) else f"{rec[c]:g}")
                                for c in cols) + "\n")
    if not (args.onsets or args.beats or args.features or args.plot):
        duration = len(result.signal) / result.sample_rate
        print(f"{result.path.name}: {duration:.2f} s at {result.sample_rate} Hz, "
              f"{len(result.frames)} hops of {result.hop_length} samples")
        print(f"onsets: {len(result.onset_times_s)}")
        print(f"tempo: {result.tempo_bpm:.2f} BPM" if result.tempo_bpm else "tempo: not locked")
        print(f"analyzer latency: {1000 * result.latency_samples / result.sample_rate:.1f} ms "
              f"(lookahead); onsets flagged ~"
              f"{1000 * result.onset_delay_samples / result.sample_rate:.1f} ms after the sound")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from phosphene.live.bench_analyzer import format_table, run_bench

    if args.seconds <= 0:
        raise PhospheneError("bench analyzer: --seconds must be positive")
    rows = run_bench(sample_rate=args.rate, seconds=args.seconds)
    print(format_table(rows, args.rate, args.seconds))
    return 0
