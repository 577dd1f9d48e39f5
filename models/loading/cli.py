"""``phosphene models convert IN OUT.safetensors``: any supported checkpoint -> our format.

Registered by ``phosphene.models.cli`` through :func:`register_convert`; the loaders are
imported only when the command runs.
"""

from __future__ import annotations


def register_convert(models_subparsers) -> None:
    convert = models_subparsers.add_parser(
        "convert", help="convert a checkpoint to phosphene's .safetensors",
        description="Convert a StyleGAN2 checkpoint (NVlabs .pkl, legacy TF .pkl, rosinality "
        ".pt, a URL or a zoo name) to a .safetensors file holding the weights and the "
        "architecture. Loading it later needs no pickle and no conversion.")
    convert.add_argument("source", metavar="IN", help="checkpoint path, URL or zoo name")
    convert.add_argument("output", metavar="OUT", help="the .safetensors file to write")
    convert.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    convert.set_defaults(func=_cmd_convert)


def _cmd_convert(args) -> int:
    from pathlib import Path

    from phosphene.errors import PhospheneError

    from . import read_checkpoint, save_generator

    if str(args.source).startswith("builtin:"):
        raise PhospheneError(f"{args.source}: built-in models need no file; nothing to convert")
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise PhospheneError(f"{output}: the output name must end in .safetensors")
    if output.exists() and not args.force:
        raise PhospheneError(f"{output} exists; pass --force to overwrite it")
    checkpoint = read_checkpoint(args.source)
    G = checkpoint.build()
    # A file's name only: the full path says nothing to whoever receives the converted file.
    origin = args.source if "://" in args.source else Path(args.source).name
    source = f"{origin} ({checkpoint.format})"
    save_generator(G, output, source=source)
    for note in checkpoint.notes:
        print(f"note: {note}")
    cfg = checkpoint.config
    print(f"wrote {output}: {checkpoint.format} -> phosphene-safetensors, "
          f"{cfg.img_resolution}x{cfg.img_resolution}, {checkpoint.num_params():,} parameters")
    return 0
