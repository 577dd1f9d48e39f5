"""``phosphene pregen voice|music`` and ``phosphene bank list|info|remove|import``.

Registration is cheap (argparse only); coqui-tts, transformers and torch are imported inside
the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phosphene.errors import PhospheneError


def default_bank_dir() -> Path:
    import platformdirs
    return Path(platformdirs.user_data_dir("phosphene")) / "bank"


def _add_bank_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank", type=Path, default=None, metavar="DIR",
                        help="bank folder (default: the per-user phosphene data folder's bank/)")


def _open_bank(args, create: bool = False):
    from phosphene.models.bank import Bank
    return Bank(args.bank or default_bank_dir(), create=create)


def _tags(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def _check_name(value: str) -> str:
    from phosphene.models.bank.names import validate_name
    try:
        return validate_name(value)
    except PhospheneError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(subparsers) -> None:
    _register_pregen(subparsers)
    _register_bank(subparsers)


# -- pregen -------------------------------------------------------------------------------------

def _register_pregen(subparsers) -> None:
    pregen = subparsers.add_parser("pregen", help="pregenerate clips into the bank (YourTTS "
                                   "voice cloning, Jukebox / MusicGen music)")
    sub = pregen.add_subparsers(dest="pregen_command", metavar="KIND")
    pregen.set_defaults(func=lambda args: (pregen.print_help(sys.stderr), 2)[1])

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
    voice.add_argument("--name", required=True, type=_check_name, help="clip name in the bank")
    voice.add_argument("--seed", type=int, default=0)
    voice.add_argument("--gap", type=float, default=0.3, metavar="S",
                       help="silence between sentences, seconds (default 0.3)")
    _add_common_generation_args(voice)
    voice.set_defaults(func=_run_voice)

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
    music.add_argument("--seconds", type=float, required=True, help="clip length in seconds")
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
    music.add_argument("--samples", type=int, default=1, metavar="N",
                       help="samples per run, generated as one batch; N>1 names them NAME-1..N")
    music.add_argument("--temperature", type=float, default=0.98,
                       help="Jukebox top-level sampling temperature (the paper's 0.98; "
                       "upsamplers use 0.99)")
    music.add_argument("--guidance", type=float, default=3.0,
                       help="MusicGen classifier-free guidance scale (default 3.0)")
    music.add_argument("--name", required=True, type=_check_name, help="clip name in the bank")
    music.add_argument("--seed", type=int, default=0)
    music.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                       help="where token checkpoints go (default: BANK/.work/NAME)")
    music.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its last checkpointed window")
    music.add_argument("--max-windows", type=int, default=None, metavar="K",
                       help="stop after sampling K windows (checkpointed), as an interruption "
                       "would; continue later with --resume. For splitting long jobs and tests.")
    _add_common_generation_args(music)
    music.set_defaults(func=_run_music)


def _add_common_generation_args(parser: argparse.ArgumentParser) -> None:
    _add_bank_arg(parser)
    parser.add_argument("--tags", metavar="T1,T2", help="comma-separated tags for the clip")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a clip of the same name")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_voice(args) -> int:
    from phosphene.models.pregen.voice import VoiceRequest, synthesize

    if args.text_file is not None:
        try:
            text = args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PhospheneError(f"cannot read --text-file {args.text_file}: {exc}") from exc
    else:
        text = args.text
    bank = _open_bank(args, create=True)
    if args.name in bank and not args.overwrite:
        raise PhospheneError(f"a clip named {args.name!r} is already in the bank "
                             "(choose another --name, or pass --overwrite)")
    request = VoiceRequest(text=text, speaker_wavs=list(args.speaker_wav),
                           language=args.language, model=args.model, seed=args.seed,
                           gap_s=args.gap, device=args.device)
    audio, rate, provenance = synthesize(request, progress=not args.no_progress)
    entry = bank.add(args.name, audio, rate, source=provenance, tags=_tags(args.tags),
                     overwrite=args.overwrite)
    print(f"{entry.name}: {entry.duration_s:.2f} s -> {bank.path / entry.file}")
    return 0


def _run_music(args) -> int:
    from phosphene.models.pregen.music import MusicRequest, generate_into_bank

    lyrics = args.lyrics or ""
    if args.lyrics_file is not None:
        try:
            lyrics = args.lyrics_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PhospheneError(f"cannot read --lyrics-file {args.lyrics_file}: {exc}") from exc
    if args.samples < 1:
        raise PhospheneError("--samples must be at least 1")
    if not args.seconds > 0:
        raise PhospheneError("--seconds must be positive")
    bank = _open_bank(args, create=True)
    request = MusicRequest(
        backend=args.backend, model=args.model, seconds=args.seconds, artist=args.artist,
        genre=args.genre, lyrics=lyrics, prompt=args.prompt, levels=args.levels,
        prime=args.prime, prime_seconds=args.prime_seconds, samples=args.samples,
        seed=args.seed, temperature=args.temperature, guidance=args.guidance,
        device=args.device, work_dir=args.work_dir, resume=args.resume,
        max_windows=args.max_windows, progress=not args.no_progress)
    entries = generate_into_bank(request, bank, args.name, tags=_tags(args.tags),
                                 overwrite=args.overwrite)
    if entries is None:
        print(f"stopped after --max-windows {args.max_windows}; continue with --resume",
              file=sys.stderr)
        return 3
    for entry in entries:
        print(f"{entry.name}: {entry.duration_s:.2f} s -> {bank.path / entry.file}")
    return 0


# -- bank ---------------------------------------------------------------------------------------

def _register_bank(subparsers) -> None:
    bank = subparsers.add_parser("bank", help="list, inspect, remove and import clips")
    sub = bank.add_subparsers(dest="bank_command", metavar="ACTION")
    bank.set_defaults(func=lambda args: (bank.print_help(sys.stderr), 2)[1])

    listing = sub.add_parser("list", help="the clips in the bank, one per line")
    _add_bank_arg(listing)
    listing.add_argument("--json", action="store_true", help="the manifest entries as JSON")
    listing.set_defaults(func=_run_list)

    info = sub.add_parser("info", help="everything the manifest knows about one clip")
    info.add_argument("name", type=_check_name)
    _add_bank_arg(info)
    info.set_defaults(func=_run_info)

    remove = sub.add_parser("remove", help="delete a clip and its files")
    remove.add_argument("name", type=_check_name)
    _add_bank_arg(remove)
    remove.set_defaults(func=_run_remove)

    imp = sub.add_parser("import", help="bring in your own recording (WAV, FLAC, OGG, AIFF, MP3)")
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.add_argument("--name", type=_check_name, help="clip name (default: from the file name)")
    imp.add_argument("--tags", metavar="T1,T2")
    imp.add_argument("--overwrite", action="store_true")
    _add_bank_arg(imp)
    imp.set_defaults(func=_run_import)


def _run_list(args) -> int:
    bank = _open_bank(args)
    entries = bank.entries()
    if args.json:
        print(json.dumps([e.model_dump() for e in entries], indent=2))
        return 0
    for e in entries:
        lufs = "   n/a" if e.loudness_lufs is None else f"{e.loudness_lufs:6.1f}"
        print(f"{e.name:<32} {e.duration_s:8.2f} s  {lufs} LUFS  "
              f"{e.source.get('backend', '?'):<9} {','.join(e.tags)}")
    return 0


def _run_info(args) -> int:
    print(json.dumps(_open_bank(args).get(args.name).model_dump(), indent=2, ensure_ascii=False))
    return 0


def _run_remove(args) -> int:
    _open_bank(args).remove(args.name)
    print(f"removed {args.name}")
    return 0


def _run_import(args) -> int:
    entry = _open_bank(args, create=True).import_file(args.file, args.name,
                                                      tags=_tags(args.tags),
                                                      overwrite=args.overwrite)
    print(f"{entry.name}: {entry.duration_s:.2f} s, {entry.gain_db:+.1f} dB")
    return 0
