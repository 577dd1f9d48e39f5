"""``phosphene live --prepare``: build the compiled live synthesis before the gig.

A first compile takes minutes on a laptop CPU (the show would run eager meanwhile). Run at
soundcheck, this builds it in the foreground with the choices the show will make -- the same
model, device and torch thread count -- so the package lands in the cache
(``models/stylegan2/aot.py``) under the key the show looks up, and the show starts compiled.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from phosphene.live.runtime.engine import open_live_generator
from phosphene.live.runtime.session import source_from_preset
from phosphene.models.stylegan2.fast import compile_for_live

log = logging.getLogger(__name__)


def prepare_compiled_synthesis(preset: str | None, model: str | None = None,
                               device: str | None = None) -> dict[str, Any]:
    """Open the show's generator as ``phosphene live`` would, and compile its synthesis now:
    ``{"model", "device", "compiled", "reason", "seconds"}``."""
    source = source_from_preset(preset, model)
    generator, _ = open_live_generator(source.model_source, device)
    log.info("compiling the live synthesis of %s on %s (a first compile takes minutes on a "
             "CPU; the show then starts with it)", source.model_source, generator.device)
    started = time.monotonic()
    live = compile_for_live(generator.G, force_fp32=generator.force_fp32)
    return {"model": source.model_source, "device": str(generator.device),
            "compiled": live.compiled, "reason": live.reason,
            "seconds": round(time.monotonic() - started, 1)}
