"""``phosphene bank list|info|remove|import|repair``: the clip bank from the command line.

Also the ``--bank`` option ``phosphene pregen`` shares.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phosphene.commands._args import add_subcommands, clip_name, tag_list


def default_bank_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("phosphene")) / "bank"


def add_bank_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank", type=Path, default=None, metavar="DIR",
                        help="bank folder (default: the per-user phosphene data folder's bank/)")


def open_bank(args: argparse.Namespace, create: bool = False):
    """The bank ``--bank`` names; ``create``: for writing, made if missing, and every clip added
    gets the live analyzer's feature timeline (the bank itself never imports the live side)."""
    # start-up time: the bank loads numpy and pydantic
    from phosphene.models.bank import Bank

    if not create:
        return Bank(args.bank or default_bank_dir())
    # start-up time (scipy); only a bank being written needs the analyzer
    from phosphene.live.analysis.clip_timeline import compute_timeline

    return Bank(args.bank or default_bank_dir(), create=True, compute_timeline=compute_timeline)


def register(subparsers: argparse._SubParsersAction) -> None:
    bank = subparsers.add_parser("bank", help="list, inspect, remove and import clips")
    sub = add_subcommands(bank, dest="bank_command", metavar="ACTION")

    listing = sub.add_parser("list", help="the clips in the bank, one per line")
    add_bank_option(listing)
    listing.add_argument("--json", action="store_true", help="the manifest entries as JSON")
    listing.set_defaults(func=run_list)

    info = sub.add_parser("info", help="everything the manifest knows about one clip")
    info.add_argument("name", type=clip_name)
    add_bank_option(info)
    info.set_defaults(func=run_info)

    remove = sub.add_parser("remove", help="delete a clip and its files")
    remove.add_argument("name", type=clip_name)
    add_bank_option(remove)
    remove.set_defaults(func=run_remove)

    imp = sub.add_parser("import", help="bring in your own recording (WAV, FLAC, OGG, AIFF, MP3)")
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.add_argument("--name", type=clip_name, help="clip name (default: from the file name)")
    imp.add_argument("--tags", type=tag_list, metavar="T1,T2")
    imp.add_argument("--overwrite", action="store_true")
    add_bank_option(imp)
    imp.set_defaults(func=run_import)

    repair = sub.add_parser("repair", help="list again the clips whose files are in the bank "
                            "folder but not in its bank.json (from their sidecars)")
    add_bank_option(repair)
    repair.set_defaults(func=run_repair)


def run_list(args: argparse.Namespace) -> int:
    bank = open_bank(args)
    entries = bank.entries()
    orphans = bank.orphans()
    if args.json:
        print(json.dumps([e.model_dump() for e in entries], indent=2))
    else:
        for e in entries:
            lufs = "   n/a" if e.loudness_lufs is None else f"{e.loudness_lufs:6.1f}"
            print(f"{e.name:<32} {e.duration_s:8.2f} s  {lufs} LUFS  "
                  f"{e.source.get('backend', '?'):<9} {','.join(e.tags)}")
        for name, files in orphans.items():
            print(f"{name:<32} NOT IN bank.json, not playable ({', '.join(files)})")
    if orphans:
        # on stderr too with --json, so the JSON stays the manifest's entries
        print(f"{len(orphans)} clip(s) in {bank.path} are not in its bank.json: `phosphene bank "
              f"repair` lists them again; `phosphene bank remove NAME` deletes one",
              file=sys.stderr if args.json else sys.stdout)
    return 0


def run_info(args: argparse.Namespace) -> int:
    print(json.dumps(open_bank(args).get(args.name).model_dump(), indent=2, ensure_ascii=False))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    open_bank(args).remove(args.name)
    print(f"removed {args.name}")
    return 0


def run_repair(args: argparse.Namespace) -> int:
    bank = open_bank(args)
    added = bank.repair()
    for entry in added:
        how = ("measured from its audio" if entry.source.get("rebuilt_from") is not None
               else "from its sidecar")
        print(f"{entry.name}: listed again ({how})")
    if not added:
        print(f"nothing to repair: every clip in {bank.path} is in its bank.json")
    return 0


def run_import(args: argparse.Namespace) -> int:
    entry = open_bank(args, create=True).import_file(args.file, args.name,
                                                     tags=args.tags or [],
                                                     overwrite=args.overwrite)
    print(f"{entry.name}: {entry.duration_s:.2f} s, {entry.gain_db:+.1f} dB")
    return 0
