"""The one driver of the effect chain: a show state + a generator frame -> a picture.

The live display, an offline render and a replay all draw through ``ChainDriver``:

- it keeps an ``EffectChain`` matching the state's effect list (``effect_names`` with the
  shader each runs, ``effect_refs``): effects switched on and off are switched in the running
  chain (``set_enabled``: no recompile, trails keep going); the chain is rebuilt only when the
  list changes (a preset switch; compiled once per change, parameter values carry over by name,
  the generator frame is pushed again so the picture never goes black). A rebuild that fails
  keeps the running chain;
- it uploads a generator frame only when a new one arrives (``frame_id`` changes);
- it sets every effect uniform from the *current* state, so an onset flash reaches the screen
  on the next display frame however long the generator takes;
- live, the ``crossfade`` effect (put first when the preset does not place it,
  ``crossfade_first``) blends the newest two generator frames, its position ramping 0 -> 1
  over one generator interval, so a slow generator still gives smooth motion; a render gives
  the position (1.0: every video frame has its own generator frame; a replay: the recorded one);
- it reloads a shader file saved during the show (``reload_if_changed``; a broken save is logged
  and the last good chain keeps running);
- a chain replaced or resized is released whole, and the heap pages it held go back to the OS
  (``return_freed_memory``), so preset switches do not grow the process.

A state is anything with the ``ShowState`` fields the driver reads (``effect_names``,
``effect_refs``, ``effects_enabled``, ``effect_params``, ``sample_index``): render/ never imports
the live side.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import time
from typing import Any

from phosphene.errors import PhospheneError
from phosphene.render.chain import EffectChain

log = logging.getLogger(__name__)

CROSSFADE = "crossfade"
# bounds on the crossfade ramp: never slower than this even if the generator stalls
MAX_RAMP_S = 1.0
# how often (wall time) shader files are checked for a save: a stat per effect, off the
# per-frame path
SHADER_POLL_S = 0.5


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim      # glibc (Linux)
    except (OSError, AttributeError):                     # macOS, Windows, musl: nothing to do
        return None


def return_freed_memory() -> None:
    """Give the heap's free pages back to the OS after a chain's textures were freed.

    Mesa's software renderer (llvmpipe) keeps textures in the process's heap. glibc serves a
    large block with mmap (given back on free) until the first such block is freed; then it
    raises its mmap threshold to that size, and later textures of that size come from the heap
    and stay in the process when freed: a preset switch at 1024x1024 left 30-80 MB resident
    that only the next switch reused. ``malloc_trim`` hands those pages back (a few ms, without
    the GIL: ctypes releases it); on a GPU driver it finds little to do."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class ChainDriver:
    """Owns an ``EffectChain`` on ``ctx`` and draws show states into its canvas."""

    def __init__(self, ctx: Any, size: tuple[int, int], sample_rate: int, *,
                 fit: str = "letterbox", crossfade_first: bool = True):
        self.ctx = ctx
        self.size = size
        self.sample_rate = int(sample_rate)
        self.fit = fit
        self.crossfade_first = crossfade_first
        self.chain: EffectChain | None = None
        self._layout: tuple | None = None
        self.frame_id: Any = None                  # id of the frame pushed last
        self._shown_at = 0.0
        self._interval_s = 0.1                     # smoothed time between generator frames
        self.frame_sample: int | None = None       # sample index of the frame shown
        # what the last draw used, for a recording to reproduce it (``FrameRecord``): the
        # frame the crossfade blends from, and the crossfade position (None: no crossfade)
        self.previous_sample: int | None = None
        self.crossfade_position: float | None = None
        self._chain_sample: int | None = None      # newest frame pushed into *this* chain
        self.rebuilds = 0                          # chains compiled after the first one
        self._switches: dict[str, bool] | None = None   # effects_enabled last applied
        self._refused_switches: set[str] = set()
        self._needs_frame = False
        self._image: Any = None
        self._next_shader_poll = 0.0

    # -- the chain ------------------------------------------------------------------------------
    def _entries(self, state: Any) -> list:
        entries: list = []
        if self.crossfade_first and CROSSFADE not in state.effect_names:
            entries.append(CROSSFADE)
        for name, ref in zip(state.effect_names, state.effect_refs):
            entries.append({"name": ref, "as": name,
                            "enabled": bool(state.effects_enabled.get(name, True))})
        return entries

    def _ensure_chain(self, state: Any) -> None:
        # what is compiled: the effects and the shader each one runs (not their on/off switch)
        layout = tuple(zip(state.effect_names, state.effect_refs))
        if layout == self._layout:
            self._apply_switches(state)
            return
        try:
            chain = EffectChain(self.ctx, self._entries(state), self.size, fit=self.fit)
        except PhospheneError as exc:
            if self.chain is None:
                raise
            log.error("effect chain not rebuilt, keeping the running one: %s", exc)
            self._layout = layout
            return
        if self.chain is not None:
            old = self.chain
            chain.set_params({k: v for k, v in old.get_params().items()
                              if k in chain.params()})
            old.release()
            self.rebuilds += 1
            return_freed_memory()
        self.chain = chain
        self._layout = layout
        self._needs_frame = True                   # push the frame on screen again
        self._chain_sample = None
        self._switches = None                      # a new chain: apply every switch afresh
        self._apply_switches(state)

    def _apply_switches(self, state: Any) -> None:
        """The show's on/off switches onto the running chain (a no-op when none changed)."""
        if self.chain is None or state.effects_enabled == self._switches:
            return
        for name, on in state.effects_enabled.items():
            try:
                self.chain.set_enabled(name, on)
            except PhospheneError as exc:   # e.g. "output" cannot be off: say so once
                if name not in self._refused_switches:
                    self._refused_switches.add(name)
                    log.error("effect switch ignored: %s", exc)
        self._switches = dict(state.effects_enabled)

    def reload_if_changed(self) -> bool:
        """Hot reload of a shader file saved during the show (checked every
        ``SHADER_POLL_S``); a broken one is logged and the last good chain keeps running."""
        now = time.monotonic()
        if self.chain is None or now < self._next_shader_poll:
            return False
        self._next_shader_poll = now + SHADER_POLL_S
        return self.chain.reload_if_changed()

    # -- per frame --------------------------------------------------------------------------------
    def draw(self, state: Any, image: Any = None, *, frame_id: Any = None,
             frame_sample: int | None = None, now: float = 0.0,
             position: float | None = None, time_s: float | None = None) -> Any:
        """Draw one frame; returns the canvas framebuffer.

        ``image``: the generator frame (torch/numpy NCHW in [-1, 1], or HWC uint8), pushed when
        ``frame_id`` differs from the last one pushed (``None``: always pushed); ``frame_sample``
        the sample index of the request it shows. ``now``: wall time for the crossfade ramp;
        ``position``: the crossfade position to use instead of the ramp. ``time_s``: effect
        time (``u_time``); default the state's audio time, the one clock (a video frame
        passes its own time)."""
        self._ensure_chain(state)
        chain = self.chain
        fresh = image is not None and (frame_id is None or frame_id != self.frame_id)
        if fresh or (self._needs_frame and image is not None):
            if fresh and self.frame_id is not None:
                gap = now - self._shown_at
                self._interval_s += 0.3 * (min(gap, MAX_RAMP_S) - self._interval_s)
            chain.push_frame(image)
            self._needs_frame = False
            self.frame_id = frame_id
            self._shown_at = now
            self.frame_sample = frame_sample
            # a fresh chain's first frame is also its "previous" one (see FrameUploader.push)
            self.previous_sample = (frame_sample if self._chain_sample is None
                                    else self._chain_sample)
            self._chain_sample = frame_sample
        params = {k: v for k, v in state.effect_params.items()
                  if k.split(".", 1)[0] in chain.effect_names}
        self.crossfade_position = None
        if CROSSFADE in chain.effect_names:
            if position is None:
                ramp = (now - self._shown_at) / max(self._interval_s, 1e-3)
                position = min(max(ramp, 0.0), 1.0)
            params[f"{CROSSFADE}.position"] = self.crossfade_position = float(position)
        chain.set_params(params)
        if time_s is None:
            time_s = state.sample_index / self.sample_rate
        return chain.render(time_s=time_s)

    def resize(self, size: tuple[int, int]) -> None:
        """Draw at another canvas size from the next frame on (trails start over; the
        generator frame is pushed again)."""
        self.size = tuple(size)
        if self.chain is not None:
            self.chain.resize(*self.size)
            self._needs_frame = True
            return_freed_memory()

    def read(self) -> Any:
        """The canvas as (H, W, 3) uint8 (a view: copy to keep it)."""
        return self.chain.read()

    def release(self) -> None:
        if self.chain is not None:
            self.chain.release()
            self.chain = None
