"""What the web control page reads from a running engine: the live status, the surface of the
running preset and a small preview of the picture.

``EngineView`` takes the engine as it is (duck-typed, like the overlay's feed: this package
never imports the runtime, which imports it) and tolerates parts a run lacks: no MIDI, no
bank, a generator with no frame yet. It reads atomic references only (the newest state, the
namespace context, the generator's newest frame) and never writes to the engine.

The preview is the generator's picture *before the effect chain* (the display draws the
effects in its own process): the newest frame, scaled to ``PREVIEW_PX`` on its long side and
JPEG-encoded at most ``PREVIEW_PER_S`` times a second, whoever asks.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from typing import Any

from PIL import Image

from phosphene.live.control.surface import Surface, build_surface
# the overlay's wording for a keyframe ("seed 23"): a pure function, loads no engine
from phosphene.live.runtime.overlay_info import keyframe_label
from phosphene.render.upload import FrameConverter

log = logging.getLogger(__name__)

PREVIEW_PX = 160
PREVIEW_PER_S = 4.0
PREVIEW_QUALITY = 70


class EngineView:
    def __init__(self, engine: Any):
        self.engine = engine
        self._preview_lock = threading.Lock()
        self._preview: tuple[int, bytes] | None = None     # (frame seq, JPEG)
        self._preview_at = 0.0
        self._convert = FrameConverter()
        self._surface_key: tuple | None = None
        self._surface: Surface | None = None

    # -- the namespace ------------------------------------------------------------------------
    def context(self):
        return self.engine.actions.context

    def surface_id(self) -> str:
        """Changes when the surface does (a preset switch or edit replaces the context; a
        captured keyframe adds a button)."""
        return f"{id(self.context()):x}-{self._keyframe_count()}"

    def _keyframe_count(self) -> int:
        show = self.engine.show
        return len(show.director.keyframes) if show is not None else 0

    def surface(self) -> Surface:
        e = self.engine
        key = (self.surface_id(),)
        if key == self._surface_key and self._surface is not None:
            return self._surface
        actions, show = e.actions, e.show
        preset = show.preset if show is not None else None
        labels = [keyframe_label(preset, i) for i in range(self._keyframe_count())]
        try:
            presets = actions.catalog.names()
        except Exception as exc:  # noqa: BLE001 - an unreadable folder: no preset buttons
            log.debug("web: preset list unavailable: %s", exc)
            presets = []
        clips: list[str] = []
        if e.clips is not None:
            try:
                clips = e.clips.bank.names()
            except Exception as exc:  # noqa: BLE001 - a broken manifest: no clip buttons
                log.debug("web: clip list unavailable: %s", exc)
        surface = build_surface(actions.context, preset=preset.name if preset else "",
                                effects=show.effect_names if show is not None else (),
                                keyframes=labels, presets=presets, clips=clips)
        self._surface_key, self._surface = key, surface
        return surface

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The engine's status (the OSC reply's figures) and what the page's meters show."""
        e = self.engine
        try:
            info = dict(e._status())
        except Exception as exc:  # noqa: BLE001 - the page must never take the show down
            info = {"status_error": f"{type(exc).__name__}: {exc}"}
        state, show, session = e.state, e.show, e.session
        heard = session.last_frame if session is not None else None
        midi = getattr(e, "midi", None)
        info.update({
            "level": float(heard.level) if heard is not None else 0.0,
            "input_dbfs": _finite(heard.rms_dbfs) if heard is not None else None,
            "beat_phase": float(heard.beat_phase) if heard is not None else 0.0,
            "analyzer_tempo_bpm": float(heard.tempo_bpm) if heard is not None else 0.0,
            "onsets": int(e.counters.onsets),
            "keyframe": int(state.request.keyframe) if state is not None else 0,
            "keyframes": self._keyframe_count(),
            "blackout": float(state.blackout) if state is not None else 0.0,
            "frozen": bool(state.frozen) if state is not None else False,
            "values": {k: _finite(v) for k, v in state.values.items()} if state else {},
            "effects_enabled": dict(state.effects_enabled) if state is not None else {},
            "midi": midi is not None,
            "midi_learn": midi.router.learning if midi is not None else None,
            "surface": self.surface_id(),
        })
        return info

    # -- preview ------------------------------------------------------------------------------
    def preview_jpeg(self) -> bytes | None:
        """The newest generator frame as a small JPEG (None before the first frame). Encoded
        again only when a new frame is there and ``1 / PREVIEW_PER_S`` has passed."""
        worker = self.engine.worker
        frame = worker.latest() if worker is not None else None
        with self._preview_lock:
            cached = self._preview
            now = time.monotonic()
            if frame is None:
                return cached[1] if cached else None
            if cached is not None and (cached[0] == frame.seq
                                       or now - self._preview_at < 1.0 / PREVIEW_PER_S):
                return cached[1]
            pixels = self._convert(frame.image)
            image = Image.fromarray(pixels[..., :3])
            image.thumbnail((PREVIEW_PX, PREVIEW_PX), Image.Resampling.BILINEAR)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=PREVIEW_QUALITY)
            self._preview, self._preview_at = (frame.seq, out.getvalue()), now
            return self._preview[1]


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
