"""``phosphene models info|sample|convert|directions``: inspect, sample and convert StyleGAN2
generators, and find meaningful directions in their latent space.

torch and the checkpoint loaders are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import logging

from phosphene.commands._args import (UsageError, add_device_option, add_subcommands,
                                      positive_float, positive_int, seeds)
from phosphene.commands import models_keyframes
from phosphene.errors import PhospheneError
# image helpers live in the library (the direction grid draws with them too); numpy only
from phosphene.models.images import image_grid, to_uint8  # noqa: F401
from phosphene.models.latent.layers import check_layer_spec  # pure Python, no torch

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

    # images as keyframes and keyframe libraries: their own module
    models_keyframes.register(actions)

    directions = actions.add_parser(
        "directions", help="find meaningful latent directions (SeFa, GANSpace)",
        description="Find directions in W that change the picture meaningfully: SeFa "
        "(closed-form factorization of the style-modulation weights, seconds) or GANSpace (PCA "
        "of sampled w). Results are cached per model in the user cache; presets use them as "
        "the parameters dir.0, dir.1, ... (in sigma: the spread of the model's own latents "
        "along each direction).")
    directions.add_argument("model", metavar="MODEL", help="checkpoint path, URL or builtin:NAME")
    directions.add_argument("--method", choices=("sefa", "ganspace"), default="sefa",
                            help="sefa (default) or ganspace")
    directions.add_argument("-n", "--count", type=positive_int, default=16,
                            help="how many directions to keep, most important first (default 16)")
    directions.add_argument("--layers", type=layer_spec, default="all",
                            help="the w rows the directions act on (and, for sefa, are computed "
                            "from): coarse, middle, fine, all (default) or A-B")
    directions.add_argument("--samples", type=positive_int, default=None, metavar="N",
                            help="w samples for ganspace's PCA and every method's sigma "
                            "(default: 10000 for ganspace, 2000 for sefa)")
    directions.add_argument("-o", "--output", required=True, help=".npz file to write")
    directions.add_argument("--grid", default=None, metavar="PNG",
                            help="also draw a labelled grid: a row per direction, columns from "
                            "-SPAN to +SPAN sigma around a seed")
    directions.add_argument("--name", dest="names", type=direction_name, action="append",
                            default=[], metavar="K=NAME",
                            help="label direction K in the grid (repeatable), e.g. 2=zoom")
    directions.add_argument("--seed", type=int, default=0, help="the grid's seed (default 0)")
    directions.add_argument("--steps", type=positive_int, default=7,
                            help="grid columns (default 7)")
    directions.add_argument("--span", type=positive_float, default=3.0,
                            help="grid range in sigma, as a preset's directions range (default 3)")
    directions.add_argument("--psi", type=float, default=0.7,
                            help="the grid's truncation psi (default 0.7, the show's default)")
    directions.add_argument("--thumb", type=positive_int, default=96, metavar="PX",
                            help="grid picture size in pixels (default 96)")
    directions.add_argument("--no-cache", action="store_true",
                            help="compute again (and do not write the cache)")
    directions.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_option(directions)
    directions.set_defaults(func=run_directions)


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


def layer_spec(text: str) -> str:
    """``--layers``: coarse, middle, fine, all or A-B (checked against the model later)."""
    try:
        return check_layer_spec(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def direction_name(text: str) -> tuple[int, str]:
    """``--name K=NAME``: a grid label for direction K."""
    index, sep, name = text.partition("=")
    if not sep or not index.strip().isdigit() or not name.strip():
        raise UsageError(f"--name {text!r}: expected K=NAME, e.g. 2=zoom")
    return int(index), name.strip()


def run_directions(args: argparse.Namespace) -> int:
    import time

    # start-up time: the loaders and the direction tools load torch
    from phosphene.models.device import pick_device
    from phosphene.models.latent.directions import directions_for
    from phosphene.models.loading import load_generator

    G = load_generator(args.model, device=pick_device(args.device))
    if args.count > G.w_dim:
        raise PhospheneError(f"-n {args.count}: this model's w has {G.w_dim} dimensions, so at "
                             f"most {G.w_dim} directions")
    start = time.perf_counter()
    found = directions_for(G, args.method, args.layers, samples=args.samples,
                           progress=not args.no_progress, use_cache=not args.no_cache)
    chosen = found.head(args.count)
    seconds = time.perf_counter() - start
    chosen.save(args.output)
    rows = chosen.rows
    print(f"{args.method}: {len(chosen)} directions of {len(found)} on w rows "
          f"{rows[0]}-{rows[-1]} ({seconds:.2f} s), sigma from {chosen.samples} samples of w")
    total = float(found.strengths.sum())
    for k in range(len(chosen)):
        share = f"  {100 * chosen.strengths[k] / total:5.1f} %" if args.method == "ganspace" else ""
        print(f"  dir.{k:<3} sigma {chosen.sigmas[k]:.3f}{share}")
    print(f"wrote {args.output}")
    if args.grid:
        # start-up time: the grid renders with torch and PIL
        from phosphene.models.latent.direction_grid import direction_grid

        names = dict(args.names)
        unknown = sorted(k for k in names if k >= len(chosen))
        if unknown:
            raise PhospheneError(f"--name {unknown[0]}=...: there are {len(chosen)} directions "
                                 f"(0..{len(chosen) - 1})")
        image = direction_grid(G, chosen, names=names, seed=args.seed, steps=args.steps,
                               span=args.span, psi=args.psi, thumb=args.thumb)
        image.save(args.grid)
        print(f"wrote {args.grid}: {len(chosen)} directions x {args.steps} steps, "
              f"-{args.span:g}..+{args.span:g} sigma around seed {args.seed}")
    return 0
