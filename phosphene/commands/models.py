"""``phosphene models info|sample|convert``: inspect, sample and convert StyleGAN2 generators.

torch and the checkpoint loaders are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
import math

from phosphene.commands._args import UsageError, add_device_option, add_subcommands, seeds
from phosphene.errors import PhospheneError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        "models", help="inspect and sample StyleGAN2 generators",
        description="Inspect StyleGAN2 checkpoints (NVlabs .pkl, TF .pkl, rosinality .pt, "
        "phosphene .safetensors, URLs) and the built-in models, and sample image grids.")
    actions = add_subcommands(models, dest="models_command", metavar="ACTION")

    info = actions.add_parser("info", help="format, resolution, latent sizes and size of a model")
    info.add_argument("model", metavar="MODEL", help="checkpoint path, URL or builtin:NAME")
    info.set_defaults(func=run_info)

    sample = actions.add_parser("sample", help="render an image grid, one image per seed")
    sample.add_argument("model", metavar="MODEL", help="checkpoint path, URL or builtin:NAME")
    sample.add_argument("--seeds", type=seeds, default="0-7",
                        help="seeds as ranges and lists, e.g. 0-7 or 1,4,9-12 (default 0-7)")
    sample.add_argument("--psi", type=float, default=1.0,
                        help="truncation psi: 1 = no truncation, 0.7 = closer to the average")
    sample.add_argument("--cutoff", type=int, default=None, metavar="N",
                        help="truncate only the first N ws (coarse layers)")
    sample.add_argument("--class", dest="class_idx", type=int, default=None, metavar="C",
                        help="class index for conditional models")
    sample.add_argument("--noise-mode", choices=("const", "random", "none"), default="const")
    add_device_option(sample)
    sample.add_argument("--cols", type=int, default=None,
                        help="grid columns (default: near-square)")
    sample.add_argument("-o", "--output", required=True, help="PNG file to write")
    sample.set_defaults(func=run_sample)

    convert = actions.add_parser(
        "convert", help="convert a checkpoint to phosphene's .safetensors",
        description="Convert a StyleGAN2 checkpoint (NVlabs .pkl, legacy TF .pkl, rosinality "
        ".pt, a URL or a zoo name) to a .safetensors file holding the weights and the "
        "architecture. Loading it later needs no pickle and no conversion.")
    convert.add_argument("source", metavar="IN", help="checkpoint path, URL or zoo name")
    convert.add_argument("output", metavar="OUT", help="the .safetensors file to write")
    convert.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    convert.set_defaults(func=run_convert)


# Handlers ---------------------------------------------------------------------------------------

def run_info(args: argparse.Namespace) -> int:
    # start-up time: the loaders load torch
    from phosphene.models.loading import describe

    d = describe(args.model)
    cfg = d.get("config", {})
    res = d["img_resolution"]
    rows = [
        ("model", d["source"]),
        ("format", d["format"]),
        ("resolution", f"{res}x{res}, {d['img_channels']} channels"),
        ("z_dim", d["z_dim"]),
        ("w_dim", d["w_dim"]),
        ("num_ws", d["num_ws"]),
        ("conditional", f"yes, c_dim={d['c_dim']}" if d["conditional"] else "no"),
        ("params", f"{d['params']:,} ({d['params'] / 1e6:.1f} M)"),
    ]
    for key in ("channel_base", "channel_max", "mapping_layers", "num_fp16_res", "conv_clamp"):
        if key in cfg:
            rows.append((key, cfg[key]))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for note in d.get("notes", []):
        print(f"note: {note}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    # start-up time: the loaders load torch
    from phosphene.models.device import pick_device
    from phosphene.models.loading import load_generator

    device = pick_device(args.device)
    G = load_generator(args.model, device=device)
    if args.cutoff is not None and not 0 < args.cutoff <= G.num_ws:
        raise PhospheneError(f"--cutoff {args.cutoff}: must be in 1..{G.num_ws}")
    try:
        c_one = G.class_vector(args.class_idx, batch_size=1, device=device)
    except ValueError as exc:
        raise PhospheneError(f"--class: {exc}") from exc

    images = []
    chunk = 8
    with torch.inference_mode():
        for start in range(0, len(args.seeds), chunk):
            part = args.seeds[start:start + chunk]
            z = G.z_from_seeds(part, device=device)
            c = None if c_one is None else c_one.expand(len(part), -1)
            img = G(z, c, truncation_psi=args.psi, truncation_cutoff=args.cutoff,
                    noise_mode=args.noise_mode)
            images.append(to_uint8(img))
            if len(args.seeds) > chunk:
                log.info("rendered %d/%d", min(start + chunk, len(args.seeds)), len(args.seeds))
    grid = image_grid(np.concatenate(images), cols=args.cols)
    mode = "L" if grid.shape[2] == 1 else "RGB"
    Image.fromarray(grid[..., 0] if mode == "L" else grid[..., :3], mode).save(args.output)
    print(f"wrote {args.output}: {len(args.seeds)} images, {grid.shape[1]}x{grid.shape[0]}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    if str(args.source).startswith("builtin:"):
        raise UsageError(f"{args.source}: built-in models need no file; nothing to convert")
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise UsageError(f"{output}: the output name must end in .safetensors")
    if output.exists() and not args.force:
        raise PhospheneError(f"{output} exists; pass --force to overwrite it")

    # start-up time: the loaders load torch
    from phosphene.models.loading import read_checkpoint, save_generator

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


# Image helpers ----------------------------------------------------------------------------------

def to_uint8(img):
    """NCHW float in nominal [-1, 1] -> NHWC uint8 numpy (the NVlabs mapping, clipped)."""
    import torch

    out = (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images, cols: int | None = None):
    """Tile NHWC images into one HWC array, row-major, near-square by default."""
    import numpy as np

    n, h, w, ch = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, ch), dtype=images.dtype)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    return grid
