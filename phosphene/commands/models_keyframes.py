"""``phosphene models project`` and ``phosphene models keyframes export|list``: images as
keyframes, and keyframe libraries (``.npz``) out of presets.

Registered by ``commands/models.py`` (they are ``models`` actions); torch is imported inside the
handlers.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from phosphene.commands._args import UsageError, add_device_option, add_subcommands, positive_int
from phosphene.errors import PhospheneError

log = logging.getLogger(__name__)


def register(actions: argparse._SubParsersAction) -> None:
    project = actions.add_parser(
        "project", help="find the latent whose frame resembles an image (a keyframe)",
        description="Project an image into a model: optimise w (or w+, one w per layer) so "
        "the frame looks like the image (its centre square, resized to the model's "
        "resolution). The loss is pixels + multi-scale structure (MS-SSIM), or a perceptual "
        "VGG16/LPIPS distance with --perceptual. Writes a keyframe library (.npz, one entry "
        "named after the image) or a .npy, usable in a preset as '- w: FILE'.")
    project.add_argument("model", metavar="MODEL", help="checkpoint path, URL or builtin:NAME")
    project.add_argument("image", metavar="IMAGE", help="the picture to project (PNG, JPEG, ...)")
    project.add_argument("--steps", type=positive_int, default=500,
                         help="optimisation steps (default 500)")
    project.add_argument("--w-plus", action="store_true",
                         help="one w per layer: closer to the image, less smooth to animate")
    project.add_argument("--perceptual", metavar="PATH", default=None,
                         help="VGG16 weights (torchvision names, optional LPIPS lin layers) as "
                         ".safetensors or a torch state dict: use the perceptual loss")
    project.add_argument("--seed", type=int, default=0,
                         help="seed of the search's random jitter (default 0)")
    project.add_argument("--name", default=None,
                         help="the keyframe's name in the .npz (default: the image's name)")
    project.add_argument("-o", "--output", required=True, help=".npz (or .npy) file to write")
    project.add_argument("--picture", default=None, metavar="PNG",
                         help="also write the target and the projection side by side")
    project.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_option(project)
    project.set_defaults(func=run_project)

    keyframes = actions.add_parser(
        "keyframes", help="keyframe libraries (.npz): export a preset's keyframes, list one",
        description="A keyframe library is an .npz file of named keyframes, one array "
        "[num_ws, w_dim] per name. A preset imports one with '- w: FILE.npz' and 'key: NAME'.")
    what = add_subcommands(keyframes, dest="keyframes_command", metavar="ACTION")
    export = what.add_parser(
        "export", help="write every keyframe of a preset, resolved to w, with names",
        description="Resolve a preset's keyframes with its model (seeds mapped, files read, "
        "images projected or read from the projection cache) and write them as a library.")
    export.add_argument("preset", metavar="PRESET", help="a shipped preset name or a .yaml path")
    export.add_argument("--model", default=None, help="use this model instead of the preset's")
    export.add_argument("-o", "--output", required=True, help="the .npz file to write")
    add_device_option(export)
    export.set_defaults(func=run_export)
    listing = what.add_parser("list", help="the names and shapes in a keyframe library")
    listing.add_argument("library", metavar="FILE.npz")
    listing.set_defaults(func=run_list)


def run_project(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    # start-up time: the loaders and the projection load torch
    from phosphene.live.control.routes import is_safe_name
    from phosphene.live.show.keyframes import save_library
    from phosphene.models.device import pick_device
    from phosphene.models.latent.losses import default_loss
    from phosphene.models.latent.projection import before_after, load_target, project
    from phosphene.models.loading import load_generator

    output = Path(args.output)
    if output.suffix not in (".npz", ".npy"):
        raise UsageError(f"{output}: the output name must end in .npz or .npy")
    name = args.name or Path(args.image).stem
    if not is_safe_name(name):
        raise UsageError(f"keyframe name {name!r}: letters, digits, _ - . only (give --name)")
    if args.perceptual:
        # torch: the perceptual loss is only built when asked for
        from phosphene.models.latent.perceptual import load_perceptual_loss

        loss = load_perceptual_loss(args.perceptual)
    else:
        loss = default_loss()
    device = pick_device(args.device)
    G = load_generator(args.model, device=device)
    target = load_target(args.image, G.img_resolution, G.img_channels)
    start = time.perf_counter()
    result = project(G, target, steps=args.steps, w_plus=args.w_plus, loss=loss, seed=args.seed,
                     progress=not args.no_progress,
                     description=f"projecting {Path(args.image).name}")
    seconds = time.perf_counter() - start
    if output.suffix == ".npz":
        save_library(output, [(name, result.w)])
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        np.save(output, result.w.astype(np.float32), allow_pickle=False)
    error = float((result.frame - result.target).abs().mean()) * 127.5
    print(f"projected {args.image} into {args.model}: {args.steps} steps "
          f"({'w+' if args.w_plus else 'w'}, {loss.name} loss {result.losses[-1]:.4f}) in "
          f"{seconds:.1f} s ({1000 * seconds / args.steps:.0f} ms/step); mean pixel error "
          f"{error:.1f}/255")
    print(f"wrote {output}" + (f" (keyframe {name!r})" if output.suffix == ".npz" else ""))
    if args.picture:
        before_after(result.target, result.frame).save(args.picture)
        print(f"wrote {args.picture}: target | projection")
    return 0


def run_export(args: argparse.Namespace) -> int:
    # start-up time: the loaders load torch
    from phosphene.live.show.keyframes import (keyframe_name, mapper_from_generator,
                                                resolve_keyframes, save_library)
    from phosphene.live.show.presets import load_preset
    from phosphene.models.device import pick_device
    from phosphene.models.latent.projection_cache import cached_projector
    from phosphene.models.loading import load_generator

    output = Path(args.output)
    if output.suffix != ".npz":
        raise UsageError(f"{output}: a keyframe library is an .npz file")
    preset, path = load_preset(args.preset)
    model = args.model or preset.model
    device = pick_device(args.device)
    G = load_generator(model, device=device)
    specs = preset.keyframe_specs()
    ws = resolve_keyframes(specs, mapper=mapper_from_generator(G, device), z_dim=G.z_dim,
                           num_ws=G.num_ws, w_dim=G.w_dim, base_dir=path.parent,
                           projector=cached_projector(G))
    save_library(output, [(keyframe_name(spec), w) for spec, w in zip(specs, ws)])
    print(f"wrote {output}: {len(ws)} keyframes of {preset.name} ({model}), "
          f"w [{G.num_ws}, {G.w_dim}] each")
    return run_list(argparse.Namespace(library=str(output)))


def run_list(args: argparse.Namespace) -> int:
    # start-up time: numpy, for this command only
    from phosphene.live.show.keyframes import load_library

    library = load_library(args.library)
    if not library:
        raise PhospheneError(f"{args.library}: an empty keyframe library")
    width = max(len(name) for name in library)
    for name, w in library.items():
        print(f"  {name:<{width}}  {list(w.shape)}")
    return 0
