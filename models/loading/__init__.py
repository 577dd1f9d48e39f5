"""Load a StyleGAN2 generator from any supported source, without running code from the file.

``load_generator(source)`` accepts:

- ``builtin:NAME`` — a built-in network (``builtin:abstract``), no file needed;
- ``http(s)://...`` — downloaded once into the user cache (see :mod:`.url`);
- a zoo name such as ``ffhq`` or ``zoo:stylegan2-ffhq-1024`` (:data:`.url.ZOO`);
- a file, recognised by its content (:mod:`.sniff`):
  NVlabs stylegan2-ada-pytorch / stylegan3-repo StyleGAN2 pickles (:mod:`.nvlabs`),
  legacy TensorFlow StyleGAN2 pickles (:mod:`.tf_legacy`), rosinality ``.pt``
  (:mod:`.rosinality`), phosphene ``.safetensors`` (:mod:`.safetensors_io`).

Pickles go through an allow-list unpickler (:mod:`.safe_unpickle`); ``torch.load`` always runs
with ``weights_only=True``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from phosphene.errors import PhospheneError
from phosphene.models.builtin import build_builtin

from . import nvlabs, rosinality, safetensors_io, sniff, tf_legacy, url
from .checkpoint import Checkpoint
from .safe_unpickle import UnsafePickleError, safe_load
from .safetensors_io import save_generator

SUPPORTED = nvlabs.SUPPORTED
__all__ = ["load_generator", "read_checkpoint", "describe", "save_generator", "Checkpoint",
           "UnsafePickleError", "SUPPORTED"]


def load_generator(source: str | os.PathLike, device=None):
    """The generator ``source`` names, in eval mode with ``requires_grad`` off."""
    name = str(source)
    if name.startswith("builtin:"):
        return _builtin(name, device)
    G = read_checkpoint(source).build(device)
    return G


def read_checkpoint(source: str | os.PathLike) -> Checkpoint:
    """Weights (under our key names) and architecture of a checkpoint file, URL or zoo name."""
    path = resolve(source)
    container, what = sniff.sniff(path)
    if container == sniff.SAFETENSORS:
        return safetensors_io.read(path)
    if container == sniff.PICKLE:
        with open(path, "rb") as f:
            data = safe_load(f)
        if tf_legacy.is_tf(data):
            return tf_legacy.read(data)
        if nvlabs.is_nvlabs(data):
            return nvlabs.read(data)
        raise PhospheneError(f"{path}: a pickle holding {_summary(data)}, not a StyleGAN2 "
                             f"network. Supported: {SUPPORTED}")
    if container in (sniff.ZIP, sniff.TORCH_LEGACY):
        data = _torch_load(path)
        if rosinality.is_rosinality(data):
            return rosinality.read(data)
        raise PhospheneError(f"{path}: a torch.save file holding {_summary(data)}, not a "
                             f"generator we know (rosinality .pt files hold 'g_ema'). "
                             f"Supported: {SUPPORTED}")
    raise PhospheneError(f"{path}: {what}, not a checkpoint. Supported: {SUPPORTED}")


def describe(source: str | os.PathLike) -> dict[str, Any]:
    """Format, architecture and size of a model, for ``phosphene models info``."""
    name = str(source)
    if name.startswith("builtin:"):
        G = _builtin(name, None)
        fmt, config, params, notes = "builtin", G.config, G.num_params(), []
    else:
        checkpoint = read_checkpoint(source)
        fmt, config = checkpoint.format, checkpoint.config
        params, notes = checkpoint.num_params(), checkpoint.notes
    return {"source": name, "format": fmt, "img_resolution": config.img_resolution,
            "img_channels": config.img_channels, "z_dim": config.z_dim, "w_dim": config.w_dim,
            "c_dim": config.c_dim, "num_ws": config.num_ws, "conditional": config.c_dim > 0,
            "params": params, "config": config.to_dict(), "notes": list(notes)}


def resolve(source: str | os.PathLike) -> Path:
    """A local file for a path, URL or zoo name (downloading if needed)."""
    name = str(source)
    if url.is_url(name):
        return url.fetch(name)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise PhospheneError(f"{path}: is a directory, not a checkpoint file")
    zoo = url.zoo_url(name)
    if zoo is not None:
        return url.fetch(zoo)
    raise PhospheneError(f"{name}: no such file, and not a known model name (builtin:abstract, "
                         f"a URL, or one of: {', '.join(sorted(url.ZOO))})")


def _builtin(name: str, device):
    return build_builtin(name.removeprefix("builtin:"), device=device)


def _torch_load(path: Path) -> Any:
    import argparse
    import pickle

    import torch

    try:
        # rosinality's train.py stores its argparse.Namespace: allow that one plain type.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if refused:
            raise UnsafePickleError(f"{path}: refusing to load: the file asks for "
                                    f"{refused.group(1)}, which weights-only loading does not "
                                    "allow (loading it could run code from the file)") from exc
        raise PhospheneError(f"{path}: corrupt or truncated torch.save file ({exc})") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PhospheneError(f"{path}: corrupt or truncated torch.save file ({message})") from exc


def _summary(data: Any) -> str:
    if isinstance(data, dict):
        keys = ", ".join(repr(k) for k in list(data)[:6])
        return f"a dict with keys {keys}" if keys else "an empty dict"
    return f"a {type(data).__name__}"
