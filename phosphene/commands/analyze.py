"""``phosphene analyze``: the live analyzer run over an audio file, printed or plotted."""

from __future__ import annotations

import argparse
import sys

from phosphene.commands._args import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # start-up time: the analyzer loads numpy and scipy
    from phosphene.live.analysis.file_analysis import (FLAG_FIELDS, NUMERIC_FIELDS, analyze_file,
                                                       write_json)
    from phosphene.live.analysis.settings import AnalyzerSettings

    try:
        settings = AnalyzerSettings(**({"hop_length": args.hop} if args.hop else {}))
    except ValueError as exc:
        raise UsageError(f"analyze: bad --hop: {exc.errors()[0]['msg']}") from None
    result = analyze_file(args.audio, settings, channel=args.channel)
    out = sys.stdout
    if args.plot:
        # only for --plot
        from phosphene.live.analysis.plot import plot_analysis

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
        # the per-hop frames are written as they are made: a long file's table is big
        frames = result.frame_records() if args.features or nothing_chosen else None
        write_json(doc, frames, out)
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
        print(f"{result.path.name}: {result.duration_s:.2f} s at {result.sample_rate} Hz, "
              f"{result.n_hops} hops of {result.hop_length} samples")
        print(f"onsets: {len(result.onset_times_s)}")
        print(f"tempo: {result.tempo_bpm:.2f} BPM" if result.tempo_bpm else "tempo: not locked")
        print(f"analyzer latency: {1000 * result.latency_samples / result.sample_rate:.1f} ms "
              f"(lookahead); onsets flagged ~"
              f"{1000 * result.onset_delay_samples / result.sample_rate:.1f} ms after the sound")
    return 0
