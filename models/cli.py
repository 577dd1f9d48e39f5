"""``phosphene models info|sample|convert`` and ``phosphene bench generator``.

Registration is cheap; torch and the loaders are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

from phosphene.errors import PhospheneError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "builtin:abstract"


def register(subparsers) -> None:
    models = subparsers.add_parser(
        "models", help="inspect and sample StyleGAN2 generators",
        description="Inspect StyleGAN2 checkpoints (NVlabs .pkl, TF .pkl, rosinality .pt, "
        "phosphene .safetensors, URLs) and the built-in models, and sample image grids.")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION")
    models.set_defaults(func=lambda args: _usage(models))

    info = actions.add_parser("info", help="format, resolution, latent sizes and size of a model")
    info.add_argument("model", metavar="MODEL", help="checkpoint path, URL or builtin:NAME")
    info.set_defaults(func=_cmd_info)

    sample = actions.add_parser("sample", help="render an image grid, one image per seed")
    sample.add_argument("model", metavar="MODEL", help="checkpoint path, URL or builtin:NAME")
    sample.add_argument("--seeds", default="0-7",
                        help="seeds as ranges and lists, e.g. 0-7 or 1,4,9-12 (default 0-7)")
    sample.add_argument("--psi", type=float, default=1.0,
                        help="truncation psi: 1 = no truncation, 0.7 = closer to the average")
    sample.add_argument("--cutoff", type=int, default=None, metavar="N",
                        help="truncate only the first N ws (coarse layers)")
    sample.add_argument("--class", dest="class_idx", type=int, default=None, metavar="C",
                        help="class index for conditional models")
    sample.add_argument("--noise-mode", choices=("const", "random", "none"), default="const")
    sample.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    sample.add_argument("--cols", type=int, default=None, help="grid columns (default: near-square)")
    sample.add_argument("-o", "--output", required=True, help="PNG file to write")
    sample.set_defaults(func=_cmd_sample)

    _register_convert(actions)


def _register_convert(actions) -> None:
    """``phosphene models convert`` is contributed by the checkpoint-loading package."""
    try:
        from phosphene.models.loading.cli import register_convert
    except ModuleNotFoundError as exc:
        if exc.name != "phosphene.models.loading.cli":
            raise
        return
    register_convert(actions)


def register_bench(bench_subparsers) -> None:
    bench = bench_subparsers.add_parser(
        "generator", help="generator frames/s per resolution, precision and batch size",
        description="Time the StyleGAN2 synthesis network (mapping excluded: it runs once per "
        "latent change, not per frame) at batch 1 and batch 8.")
    bench.add_argument("--model", default=None,
                       help="a checkpoint / builtin:NAME (default: builtin-like nets per --size)")
    bench.add_argument("--size", default="256", type=_parse_int_list,
                       help="resolutions for random-weight nets, e.g. 256,512,1024 (default 256)")
    bench.add_argument("--arch", choices=("builtin", "config-f"), default="builtin",
                       help="architecture of the random-weight nets: the builtin:abstract one "
                       "(default) or StyleGAN2 config-f (512 channels, num_fp16_res=4)")
    bench.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    bench.add_argument("--precision", default="fp32", type=_parse_precisions,
                       help="fp32, fp16 or fp32,fp16 (fp16: the highest resolutions, CUDA only)")
    bench.add_argument("--batch", default="1,8", type=_parse_int_list, help="batch sizes (default 1,8)")
    bench.add_argument("--frames", type=int, default=None,
                       help="timed batches per case (default: about two seconds' worth)")
    bench.add_argument("--threads", type=int, default=None,
                       help="CPU threads for torch (default: torch's choice; 1 is faster when "
                       "other programs keep the cores busy)")
    bench.add_argument("--compile", action="store_true",
                       help="also time compile_for_live (torch.compile / CUDA graphs) at batch 1")
    bench.set_defaults(func=_cmd_bench)


# Argument parsing -------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``; a PhospheneError (one line) names the bad part."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
        except (TypeError, ValueError):
            raise PhospheneError(
                f"--seeds {text!r}: {part!r} is not a seed or a range like 0-7") from None
    if any(s >= 2**32 for s in seeds):
        raise PhospheneError(f"--seeds {text!r}: seeds must be in 0..4294967295")
    if len(seeds) > 1024:
        raise PhospheneError(f"--seeds {text!r}: at most 1024 images per grid")
    return seeds


def _parse_int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _parse_precisions(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in ("fp32", "fp16")]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"precision must be fp32, fp16 or both, got {text!r}")
    return values


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# Shared helpers ---------------------------------------------------------------------------------

def pick_device(name: str = "auto"):
    """``auto`` -> cuda, else mps, else cpu; an explicit device must exist."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PhospheneError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PhospheneError(f"device {name!r}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise PhospheneError(f"device {name!r}: MPS is not available on this machine")
    return device


def load_model(source: str, device=None):
    """The generator ``source`` names, via the checkpoint loader (builtins without it)."""
    try:
        from phosphene.models.loading import load_generator
    except ModuleNotFoundError as exc:
        if not exc.name.startswith("phosphene.models.loading"):
            raise
        load_generator = None
    if load_generator is not None:
        return load_generator(source, device=device)
    if source.startswith("builtin:"):
        from phosphene.models.builtin import build_builtin

        return build_builtin(source, device=device)
    raise PhospheneError(f"{source}: checkpoint loading is not installed; try {DEFAULT_MODEL}")


def describe_model(source: str) -> dict:
    try:
        from phosphene.models.loading import describe
    except (ModuleNotFoundError, ImportError):
        describe = None
    if describe is not None:
        return describe(source)
    G = load_model(source)
    cfg = G.config
    return {"source": source, "format": "builtin" if source.startswith("builtin:") else "?",
            "img_resolution": cfg.img_resolution, "img_channels": cfg.img_channels,
            "z_dim": cfg.z_dim, "w_dim": cfg.w_dim, "c_dim": cfg.c_dim, "num_ws": cfg.num_ws,
            "conditional": cfg.c_dim > 0, "params": G.num_params(), "config": cfg.to_dict(),
            "notes": []}


# Handlers ---------------------------------------------------------------------------------------

def _cmd_info(args) -> int:
    d = describe_model(args.model)
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


def _cmd_sample(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    parse_seeds(args.seeds)  # fail on a typo before loading a large model
    device = pick_device(args.device)
    G = load_model(args.model, device=device)
    if args.cutoff is not None and not 0 < args.cutoff <= G.num_ws:
        raise PhospheneError(f"--cutoff {args.cutoff}: must be in 1..{G.num_ws}")
    try:
        c_one = G.class_vector(args.class_idx, batch_size=1, device=device)
    except ValueError as exc:
        raise PhospheneError(f"--class: {exc}") from exc

    seeds = parse_seeds(args.seeds)
    images = []
    chunk = 8
    with torch.inference_mode():
        for start in range(0, len(seeds), chunk):
            part = seeds[start:start + chunk]
            z = G.z_from_seeds(part, device=device)
            c = None if c_one is None else c_one.expand(len(part), -1)
            img = G(z, c, truncation_psi=args.psi, truncation_cutoff=args.cutoff,
                    noise_mode=args.noise_mode)
            images.append(to_uint8(img))
            if len(seeds) > chunk:
                log.info("rendered %d/%d", min(start + chunk, len(seeds)), len(seeds))
    grid = image_grid(np.concatenate(images), cols=args.cols)
    mode = "L" if grid.shape[2] == 1 else "RGB"
    Image.fromarray(grid[..., 0] if mode == "L" else grid[..., :3], mode).save(args.output)
    print(f"wrote {args.output}: {len(seeds)} images, {grid.shape[1]}x{grid.shape[0]}")
    return 0


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


def _cmd_bench(args) -> int:
    from phosphene.models.bench import run_generator_bench

    device = pick_device(args.device)
    if "fp16" in args.precision and device.type != "cuda":
        raise PhospheneError(f"--precision fp16 needs a CUDA device (got {device}); "
                             "the fp16 path is CUDA-only")
    run_generator_bench(model=args.model, sizes=args.size, arch=args.arch, device=device,
                        precisions=args.precision, batches=args.batch, frames=args.frames,
                        include_compiled=args.compile, threads=args.threads)
    return 0
