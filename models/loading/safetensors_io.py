"""phosphene's own checkpoint format: a ``.safetensors`` file with the config in its metadata.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor names,
dtypes, shapes, offsets, and a ``__metadata__`` dict of strings), then raw tensor bytes —
nothing in it can execute. Ours stores the generator's state_dict (NVlabs key names) and::

    __metadata__ = {"format": "phosphene-stylegan2", "format_version": "1",
                    "config": "<GeneratorConfig as JSON>", "source": "<where it came from>"}
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from phosphene.errors import PhospheneError
from phosphene.models.stylegan2.config import GeneratorConfig

from .checkpoint import Checkpoint

FORMAT = "phosphene-safetensors"
FORMAT_TAG = "phosphene-stylegan2"
FORMAT_VERSION = 1


def save_generator(G, path: str | os.PathLike, source: str = "") -> Path:
    """Write ``G``'s weights and config to ``path`` atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    metadata = {"format": FORMAT_TAG, "format_version": str(FORMAT_VERSION),
                "config": json.dumps(G.config.to_dict()), "source": str(source)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise PhospheneError(f"{path}: corrupt or truncated safetensors file ({exc})") from exc


def read(path: str | os.PathLike) -> Checkpoint:
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT_TAG or "config" not in metadata:
        raise PhospheneError(f"{path}: a safetensors file, but not a phosphene generator (no "
                             f"'{FORMAT_TAG}' config in its metadata); convert checkpoints with "
                             "`phosphene models convert`")
    version = int(metadata.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise PhospheneError(f"{path}: written by a newer phosphene (format version {version}; "
                             f"this one reads {FORMAT_VERSION})")
    try:
        config = GeneratorConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError) as exc:
        raise PhospheneError(f"{path}: bad generator config in metadata: {exc}") from exc
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise PhospheneError(f"{path}: corrupt or truncated safetensors file ({exc})") from exc
    notes = [f"converted from {metadata['source']}"] if metadata.get("source") else []
    return Checkpoint(FORMAT, config, state, notes)
