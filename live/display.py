"""The display side of the engine: newest generator frame + current show state -> a picture.

Runs on the thread that owns the OpenGL context (the main thread for a window), once per
display frame. It

- uploads a generator frame when a new one finished (and only then);
- crossfades the newest two generator frames (the ``crossfade`` effect, put first in the chain
  when the preset does not place it): ``position`` ramps 0 -> 1 over one generator interval,
  so a slow generator still gives smooth motion;
- sets every effect uniform from the *current* show state, so an onset flash reaches the screen
  on the next display frame however long the generator takes;
- rebuilds the chain when the preset's effect list or an effect's on/off switch changes
  (compiled once per change, not per frame; parameter values carry over by name).
"""

from __future__ import annotations

import logging
from typing import Any

from phosphene.errors import PhospheneError
from phosphene.live.generator_worker import GeneratedFrame
from phosphene.live.show import ShowState

log = logging.getLogger(__name__)

CROSSFADE = "crossfade"
# bounds on the crossfade ramp: never slower than this even if the generator stalls
MAX_RAMP_S = 1.0


class Presenter:
    """Owns an ``EffectChain`` on ``ctx`` and draws show states into its canvas."""

    def __init__(self, ctx: Any, size: tuple[int, int], effect_refs: dict[str, str],
                 sample_rate: int):
        self.ctx = ctx
        self.size = size
        self.sample_rate = int(sample_rate)
        self.effect_refs = dict(effect_refs)   # effect name -> built-in name or shader path
        self.chain = None
        self._layout: tuple | None = None
        self._shown_seq = 0
        self._shown_at = 0.0
        self._interval_s = 0.1                 # smoothed time between generator frames
        self.generator_sample: int | None = None   # request sample index of the frame shown
        self.rebuilds = 0
        self._needs_frame = False

    # -- the chain ------------------------------------------------------------------------------
    def _entries(self, state: ShowState) -> list:
        entries: list = []
        if CROSSFADE not in state.effect_names:
            entries.append(CROSSFADE)
        for name in state.effect_names:
            ref = self.effect_refs.get(name, name)
            entries.append({"name": ref, "as": name,
                            "enabled": bool(state.effects_enabled.get(name, True))})
        return entries

    def _ensure_chain(self, state: ShowState) -> None:
        layout = (state.effect_names, tuple(sorted(state.effects_enabled.items())))
        if layout == self._layout:
            return
        from phosphene.render.chain import EffectChain

        entries = self._entries(state)
        try:
            chain = EffectChain(self.ctx, entries, self.size)
        except PhospheneError as exc:
            if self.chain is None:
                raise
            log.error("effect chain not rebuilt, keeping the running one: %s", exc)
            self._layout = layout
            return
        if self.chain is not None:
            # carry the generator frames over, so the picture does not go black
            old = self.chain
            chain.set_params({k: v for k, v in old.get_params().items()
                              if k in chain.params()})
            old.release()
            self.rebuilds += 1
        self.chain = chain
        self._layout = layout
        self._needs_frame = True

    def update_refs(self, effect_refs: dict[str, str]) -> None:
        self.effect_refs.update(effect_refs)

    # -- per display frame ----------------------------------------------------------------------
    def draw(self, state: ShowState, generated: GeneratedFrame | None, now: float) -> Any:
        """Render one display frame; returns the canvas framebuffer."""
        self._ensure_chain(state)
        chain = self.chain
        if generated is not None and (generated.seq != self._shown_seq or self._needs_frame):
            if generated.seq != self._shown_seq and self._shown_seq:
                gap = now - self._shown_at
                self._interval_s += 0.3 * (min(gap, MAX_RAMP_S) - self._interval_s)
            chain.push_frame(generated.image)
            self._needs_frame = False
            self._shown_seq = generated.seq
            self._shown_at = now
            self.generator_sample = generated.request.sample_index
        params = {k: v for k, v in state.effect_params.items()
                  if k.split(".", 1)[0] in chain.effect_names}
        if CROSSFADE in chain.effect_names:
            ramp = (now - self._shown_at) / max(self._interval_s, 1e-3)
            params[f"{CROSSFADE}.position"] = min(max(ramp, 0.0), 1.0)
        chain.set_params(params)
        # effect time (u_time) is audio time: the one clock, as in an offline render
        return chain.render(time_s=state.sample_index / self.sample_rate)

    def release(self) -> None:
        if self.chain is not None:
            self.chain.release()
            self.chain = None


def effect_refs_of(preset) -> dict[str, str]:
    """Effect name (as the preset addresses it) -> what to compile (a built-in or a path)."""
    return dict(zip(preset.effect_names(), (e.name for e in preset.effects)))

