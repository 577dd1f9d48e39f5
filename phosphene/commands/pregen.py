"""``phosphene pregen voice|music``: pregenerate clips into the bank.

Registration is cheap (argparse only); coqui-tts, transformers and torch are imported inside
the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phosphene.commands._args import (add_device_option, add_subcommands, clip_name,
                                      positive_float, positive_int, tag_list)
from phosphene.commands.bank import add_bank_option, open_bank
from phosphene.errors import PhospheneError

# Where pregeneration may run (never MPS: see phosphene.models.device.pick_device)
PREGEN_DEVICES = ("auto", "cpu", "cuda")


def register(subparsers: argparse._SubParsersAction) -> None:
    pregen = subparsers.add_parser("pregen", help="pregenerate clips into the bank (YourTTS "
                                   "voice cloning, Jukebox / MusicGen music)")
    sub = add_subcommands(pregen, dest="pregen_command", metavar="KIND")

    voice = sub.add_parser("voice", help="a cloned voice speaking a text (YourTTS)",
                           description="Clone a voice from a short recording and make it speak "
                           "English, French or Brazilian Portuguese (YourTTS via coqui-tts).")
    text = voice.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="what to say")
    text.add_argument("--text-file", type=Path, metavar="F", help="UTF-8 text file to speak")
    voice.add_argument("--speaker-wav", type=Path, action="append", required=True, metavar="WAV",
                       help="recording of the voice to clone (repeat for several; their "
                       "embeddings are averaged)")
    voice.add_argument("--language", required=True, choices=("en", "fr-fr", "pt-br"))
    voice.add_argument("--model", default="your_tts", metavar="DIR|NAME",
                       help="YourTTS folder in coqui-tts's layout, or 'your_tts' / "
                       "tts_models/multilingual/multi-dataset/your_tts to let coqui-tts "
                       "download it (default: your_tts)")
    voice.add_argument("--name", required=True, type=clip_name, help="clip name in the bank")
    voice.add_argument("--seed", type=int, default=0)
    voice.add_argument("--gap", type=float, default=0.3, metavar="S",
                       help="silence between sentences, seconds (default 0.3)")
    _add_common_generation_args(voice)
    voice.set_defaults(func=run_voice)

    music = sub.add_parser("music", help="music from artist/genre/lyrics (Jukebox) or a "
                           "text prompt (MusicGen)",
                           description="Generate music into the bank. Jukebox (default backend) "
                           "samples the top-level prior conditioned on artist, genre, lyrics and "
                           "timing window by window, then upsamples (--levels all) or decodes the "
                           "top level directly (--levels top, a fast draft). Tokens are "
                           "checkpointed after every window in --work-dir; rerun with --resume "
                           "after an interruption. MusicGen (--backend musicgen --prompt ...) "
                           "takes minutes rather than hours.")
    music.add_argument("--backend", choices=("jukebox", "musicgen"), default="jukebox")
    music.add_argument("--artist", help="Jukebox artist (checked against the model's list)")
    music.add_argument("--genre", help="Jukebox genre (checked against the model's list)")
    lyrics = music.add_mutually_exclusive_group()
    lyrics.add_argument("--lyrics-file", type=Path, metavar="F", help="lyrics (UTF-8 text)")
    lyrics.add_argument("--lyrics", help="lyrics given inline")
    music.add_argument("--prompt", help="MusicGen text prompt")
    music.add_argument("--seconds", type=positive_float, required=True,
                       help="clip length in seconds")
    music.add_argument("--model", required=True, metavar="DIR|NAME",
                       help="folder saved with save_pretrained, or a Hugging Face hub name "
                       "(openai/jukebox-1b-lyrics, openai/jukebox-5b-lyrics, "
                       "facebook/musicgen-small, ...)")
    music.add_argument("--levels", choices=("top", "all"), default="all",
                       help="Jukebox: 'all' upsamples through every level (hours); 'top' "
                       "decodes the top level directly (lo-fi draft)")
    music.add_argument("--prime", type=Path, metavar="WAV", help="Jukebox: continue this recording")
    music.add_argument("--prime-seconds", type=float, default=None, metavar="P",
                       help="Jukebox: how much of --prime to continue from (default: all of "
                       "it, up to --seconds)")
    music.add_argument("--samples", type=positive_int, default=1, metavar="N",
                       help="samples per run, generated as one batch; N>1 names them NAME-1..N")
    music.add_argument("--temperature", type=float, default=0.98,
                       help="Jukebox top-level sampling temperature (the paper's 0.98; "
                       "upsamplers use 0.99)")
    music.add_argument("--guidance", type=float, default=3.0,
                       help="MusicGen classifier-free guidance scale (default 3.0)")
    music.add_argument("--name", required=True, type=clip_name, help="clip name in the bank")
    music.add_argument("--seed", type=int, default=0)
    music.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                       help="where token checkpoints go (default: BANK/.work/NAME)")
    music.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its last checkpointed window")
    music.add_argument("--max-windows", type=int, default=None, metavar="K",
                       help="stop after sampling K windows (checkpointed), as an interruption "
                       "would; continue later with --resume. For splitting long jobs and tests.")
    _add_common_generation_args(music)
    music.set_defaults(func=run_music)

    batch = sub.add_parser("batch", help="a file of music and voice jobs, here or on a Ray "
                           "cluster",
                           description="Run every job of a YAML job file (music and voice; a "
                           "list of seeds makes one clip per seed) and add each clip to the "
                           "bank as it is done. With --cluster the jobs run on Ray workers that "
                           "load each model once; a lost worker's job runs again (Jukebox from "
                           "its last checkpointed window). Run again after an interruption: "
                           "clips already made are skipped.",
                           epilog="job file:\n"
                           "  defaults: {music: {model: models/jukebox-1b, seconds: 30}}\n"
                           "  jobs:\n"
                           "    - {kind: music, name: rock, artist: The Beatles, genre: Rock,\n"
                           "       lyrics_file: rock.txt, seed: [1, 2, 3]}\n"
                           "    - {kind: voice, name: hello, text: Bonjour., language: fr-fr,\n"
                           "       speaker_wav: me.wav, model: models/your_tts}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    batch.add_argument("jobs", type=Path, metavar="JOBS.yaml")
    add_bank_option(batch)
    add_device_option(batch, choices=PREGEN_DEVICES, help=None)
    _add_cluster_option(batch)
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.set_defaults(func=run_batch)


def _add_cluster_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="ADDR",
                        help="run on Ray: local[:N] (a Ray runtime here with N workers), auto "
                        "(the cluster this machine joined) or ray://HOST:PORT; GPU workers "
                        "when the cluster has GPUs (needs phosphene[cluster])")


def _add_common_generation_args(parser: argparse.ArgumentParser) -> None:
    add_bank_option(parser)
    parser.add_argument("--tags", type=tag_list, metavar="T1,T2",
                        help="comma-separated tags for the clip")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a clip of the same name")
    add_device_option(parser, choices=PREGEN_DEVICES, help=None)
    _add_cluster_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PhospheneError(f"cannot read {option} {path}: {exc}") from exc


def run_voice(args: argparse.Namespace) -> int:
    # start-up time: numpy (torch and coqui-tts once synthesizing)
    from phosphene.models.pregen.voice import VoiceRequest, synthesize

    text = args.text if args.text_file is None else _read_text(args.text_file, "--text-file")
    if args.cluster:
        return _one_job_on_cluster(args, {
            "kind": "voice", "name": args.name, "text": text, "language": args.language,
            "speaker_wav": [str(p.resolve()) for p in args.speaker_wav], "model": args.model,
            "seed": args.seed, "gap": args.gap, "tags": args.tags or []})
    bank = open_bank(args, create=True)
    if args.name in bank and not args.overwrite:
        raise PhospheneError(f"a clip named {args.name!r} is already in the bank "
                             "(choose another --name, or pass --overwrite)")
    request = VoiceRequest(text=text, speaker_wavs=list(args.speaker_wav),
                           language=args.language, model=args.model, seed=args.seed,
                           gap_s=args.gap, device=args.device)
    audio, rate, provenance = synthesize(request, progress=not args.no_progress)
    entry = bank.add(args.name, audio, rate, source=provenance, tags=args.tags or [],
                     overwrite=args.overwrite)
    print(f"{entry.name}: {entry.duration_s:.2f} s -> {bank.path / entry.file}")
    return 0


def run_music(args: argparse.Namespace) -> int:
    # start-up time: numpy, the bank (torch and transformers once generating)
    from phosphene.models.pregen.music import MusicRequest, generate_into_bank

    lyrics = args.lyrics or ""
    if args.lyrics_file is not None:
        lyrics = _read_text(args.lyrics_file, "--lyrics-file")
    if args.cluster:
        if args.prime or args.samples != 1 or args.max_windows or args.work_dir:
            raise PhospheneError("--cluster runs one sample from scratch or from its checkpoint "
                                 "in the bank: --prime, --samples, --max-windows and --work-dir "
                                 "are for local runs")
        return _one_job_on_cluster(args, {
            "kind": "music", "name": args.name, "model": args.model, "seconds": args.seconds,
            "backend": args.backend, "artist": args.artist, "genre": args.genre,
            "lyrics": lyrics, "prompt": args.prompt, "levels": args.levels, "seed": args.seed,
            "temperature": args.temperature, "guidance": args.guidance,
            "tags": args.tags or []})
    bank = open_bank(args, create=True)
    request = MusicRequest(
        backend=args.backend, model=args.model, seconds=args.seconds, artist=args.artist,
        genre=args.genre, lyrics=lyrics, prompt=args.prompt, levels=args.levels,
        prime=args.prime, prime_seconds=args.prime_seconds, samples=args.samples,
        seed=args.seed, temperature=args.temperature, guidance=args.guidance,
        device=args.device, work_dir=args.work_dir, resume=args.resume,
        max_windows=args.max_windows, progress=not args.no_progress)
    entries = generate_into_bank(request, bank, args.name, tags=args.tags or [],
                                 overwrite=args.overwrite)
    if entries is None:
        print(f"stopped after --max-windows {args.max_windows}; continue with --resume",
              file=sys.stderr)
        return 3
    for entry in entries:
        print(f"{entry.name}: {entry.duration_s:.2f} s -> {bank.path / entry.file}")
    return 0


def _one_job_on_cluster(args: argparse.Namespace, job: dict) -> int:
    """``pregen music|voice --cluster``: the command as a batch of one job."""
    # start-up time: pydantic and the bank (Ray once the batch runs)
    from phosphene.models.pregen.batch import load_job_data

    if args.overwrite:
        raise PhospheneError("--overwrite is for local runs (a cluster job never replaces a "
                             "clip): remove the clip first with `phosphene bank remove`")
    return _run_tasks(args, load_job_data({"jobs": [job]}, Path.cwd(), "--cluster job"))


def run_batch(args: argparse.Namespace) -> int:
    # start-up time: pydantic and the bank (torch, Ray once the batch runs)
    from phosphene.models.pregen.batch import load_jobs

    return _run_tasks(args, load_jobs(args.jobs))


def _run_tasks(args: argparse.Namespace, tasks: list) -> int:
    from phosphene.models.pregen.batch import run_batch as run  # start-up time, as above

    if args.cluster:
        # before the bank is touched: a bad address or a missing Ray costs nothing
        from phosphene.cluster import preflight

        preflight(args.cluster)
    bank = open_bank(args, create=True)
    report = run(tasks, bank, device=args.device, cluster=args.cluster,
                 progress=not args.no_progress)
    for name in report.skipped:
        print(f"{name}: already in the bank (made by this job)", file=sys.stderr)
    for name in report.done:
        entry = bank.get(name)
        print(f"{entry.name}: {entry.duration_s:.2f} s -> {bank.path / entry.file}")
    for name, why in report.failed.items():
        print(f"{name}: failed: {why}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {len(tasks)} jobs failed; run the batch again to "
              "retry them (finished clips are kept)", file=sys.stderr)
        return 1
    return 0
