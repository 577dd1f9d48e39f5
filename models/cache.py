"""The user cache folder phosphene keeps derived files in (downloads, computed directions).

``PHOSPHENE_CACHE_DIR`` overrides the platform's cache folder (``platformdirs``), so tests and
read-only homes can point it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The folder every phosphene cache lives under (not created here)."""
    override = os.environ.get("PHOSPHENE_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs  # only where no override is set

    return Path(platformdirs.user_cache_dir("phosphene"))
