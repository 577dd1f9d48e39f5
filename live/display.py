"""The display side of the engine: newest generator frame + current show state -> a picture.

Runs on the thread that owns the OpenGL context (the main thread for a window), once per
display frame. It

- uploads a generator frame when a new one finished (and only then);
- crossfades the newest two generator frames (the ``crossfade`` effect, put first in the chain
  when the preset does not place it): ``position`` ramps 0 -> 1 over one generator interval,
  so a slow generator still gives smooth motion;
- sets every effect uniform from the *current* show state, so an onset flash reaches the screen
  on the next display frame however long the generator takes;
- switches effects on and off in the running chain (``EffectChain.set_enabled``: no
  recompile, trails keep going), and rebuilds the chain only when the preset's effect list
  changes (a preset switch; compiled once per change, parameter values carry over by name).
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
        # what the last draw used, for a recording to reproduce it (``FrameRecord``): the
        # frame the crossfade blends from, and the crossfade position (None: no crossfade)
        self.previous_sample: int | None = None
        self.crossfade_position: float | None = None
        self._chain_sample: int | None = None      # newest frame pushed into *this* chain
        self.rebuilds = 0                      # chains compiled after the first one
        self._switches: dict[str, bool] | None = None   # effects_enabled last applied
        self._refused_switches: set[str] = set()
        self._needs_frame = False

    # -- the chain ------------------------------------------------------------------------------
    def _entries(self, state: ShowState) -> list:
        entries: list = []
        if CROSSFADE not in state.effect_names:
            entries.append(CROSSFADE)
        for name in state.effect_names:
            entries.append({"name": self.effect_refs.get(name, name), "as": name,
                            "enabled": bool(state.effects_enabled.get(name, True))})
        return entries

    def _ensure_chain(self, state: ShowState) -> None:
        # what is compiled: the effects and the shader each one runs (not their on/off switch)
        layout = tuple((name, self.effect_refs.get(name, name)) for name in state.effect_names)
        if layout == self._layout:
            self._apply_switches(state)
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
        self._chain_sample = None
        self._switches = None                  # a new chain: apply every switch afresh
        self._apply_switches(state)

    def _apply_switches(self, state: ShowState) -> None:
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

    def update_refs(self, effect_refs: dict[str, str]) -> None:
        self.effect_refs.update(effect_refs)

    # -- per display frame ----------------------------------------------------------------------
    @property
    def shown_seq(self) -> int:
        """Sequence number of the generator frame on screen (0 before the first)."""
        return self._shown_seq

    def draw(self, state: ShowState, generated: GeneratedFrame | None, now: float,
             position: float | None = None) -> Any:
        """Render one display frame; returns the canvas framebuffer. ``position``: the
        crossfade position to use instead of the wall-clock ramp (a replay of a recording)."""
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
            # a fresh chain's first frame is also its "previous" one (see FrameUploader.push)
            self.previous_sample = (self.generator_sample if self._chain_sample is None
                                    else self._chain_sample)
            self._chain_sample = self.generator_sample
        params = {k: v for k, v in state.effect_params.items()
                  if k.split(".", 1)[0] in chain.effect_names}
        self.crossfade_position = None
        if CROSSFADE in chain.effect_names:
            if position is None:
                ramp = (now - self._shown_at) / max(self._interval_s, 1e-3)
                position = min(max(ramp, 0.0), 1.0)
            params[f"{CROSSFADE}.position"] = self.crossfade_position = float(position)
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

