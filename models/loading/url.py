"""Checkpoints from the web: ``http(s)://`` URLs and a small zoo of well-known names.

A URL is downloaded once into the user cache dir (``platformdirs``; override with
``PHOSPHENE_CACHE_DIR``) and reused afterwards. The download streams into a temporary file in
the same folder and is renamed into place only when complete, so an interrupted download never
leaves a half file that later looks valid.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from phosphene.errors import PhospheneError
from phosphene.models.cache import cache_root

_NVLABS_ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
_NVLABS_SG3_REPO = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files"
_NVLABS_TF = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks"

# Known checkpoints -> URL (all StyleGAN2; NVlabs' are non-commercial licensed).
ZOO: dict[str, str] = {
    # stylegan2-ada-pytorch paper models (pickles with G_ema).
    "ffhq": f"{_NVLABS_ADA}/ffhq.pkl",
    "metfaces": f"{_NVLABS_ADA}/metfaces.pkl",
    "afhqcat": f"{_NVLABS_ADA}/afhqcat.pkl",
    "afhqdog": f"{_NVLABS_ADA}/afhqdog.pkl",
    "afhqwild": f"{_NVLABS_ADA}/afhqwild.pkl",
    "brecahad": f"{_NVLABS_ADA}/brecahad.pkl",
    "cifar10": f"{_NVLABS_ADA}/cifar10.pkl",  # conditional, 10 classes
    # StyleGAN2 models released with the stylegan3 repo.
    "stylegan2-ffhq-256": f"{_NVLABS_SG3_REPO}/stylegan2-ffhq-256x256.pkl",
    "stylegan2-ffhq-512": f"{_NVLABS_SG3_REPO}/stylegan2-ffhq-512x512.pkl",
    "stylegan2-ffhq-1024": f"{_NVLABS_SG3_REPO}/stylegan2-ffhq-1024x1024.pkl",
    "stylegan2-metfaces-1024": f"{_NVLABS_SG3_REPO}/stylegan2-metfaces-1024x1024.pkl",
    "stylegan2-afhqv2-512": f"{_NVLABS_SG3_REPO}/stylegan2-afhqv2-512x512.pkl",
    "stylegan2-celebahq-256": f"{_NVLABS_SG3_REPO}/stylegan2-celebahq-256x256.pkl",
    # The original TensorFlow StyleGAN2 release (converted on load).
    "stylegan2-ffhq-config-f": f"{_NVLABS_TF}/stylegan2-ffhq-config-f.pkl",
    "stylegan2-car-config-f": f"{_NVLABS_TF}/stylegan2-car-config-f.pkl",
    "stylegan2-cat-config-f": f"{_NVLABS_TF}/stylegan2-cat-config-f.pkl",
    "stylegan2-church-config-f": f"{_NVLABS_TF}/stylegan2-church-config-f.pkl",
    "stylegan2-horse-config-f": f"{_NVLABS_TF}/stylegan2-horse-config-f.pkl",
}

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def zoo_url(name: str) -> str | None:
    """The URL of a zoo name (``ffhq`` or ``zoo:ffhq``), or None."""
    return ZOO.get(name.removeprefix("zoo:"))


def cache_dir() -> Path:
    return cache_root() / "checkpoints"


def cached_path(url: str) -> Path:
    """Where ``url`` lives in the cache: a hash of the URL (unique) + its file name (readable)."""
    name = os.path.basename(urlparse(url).path) or "checkpoint"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[-80:]
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_dir() / f"{digest}-{name}"


def fetch(url: str, progress: bool = True) -> Path:
    """Local path of ``url``'s content, downloading it on first use."""
    target = cached_path(url)
    if target.exists():
        return target
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "phosphene"})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"downloading {target.name.split('-', 1)[1]}",
                          disable=not progress) as bar:
                    received = 0
                    while chunk := response.read(CHUNK_BYTES):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if total is not None and received != total:
                    raise PhospheneError(f"download of {url} stopped after {received} of {total} "
                                         "bytes; try again")
        os.replace(tmp, target)
    except urllib.error.HTTPError as exc:
        raise PhospheneError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PhospheneError(f"cannot download {url}: {reason}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
