"""Headless rendering: an EGL context, an effect chain and asynchronous readback, in one object.

This is what offline renders (and tests, and benchmarks) use::

    with HeadlessRenderer(1920, 1080, ["crossfade", "flash", "color"]) as r, \\
         VideoWriter("out.mp4", 1920, 1080, fps=30, audio=(samples, sr)) as video:
        for i, frame in enumerate(frames):
            r.push_frame(frame)
            r.set_params(params_for(i))
            done = r.render(time_s=i / 30)        # pixels of an earlier frame, or None
            if done is not None:
                video.write(done)
        for done in r.drain():
            video.write(done)

``render_sync`` returns the frame just drawn instead (simpler, a little slower).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from phosphene.render.chain import ChainEntry, EffectChain
from phosphene.render.context import create_headless_context
from phosphene.render.readback import AsyncReadback


class HeadlessRenderer:
    def __init__(self, width: int, height: int, effects: Sequence[ChainEntry] = (),
                 fit: str = "letterbox", filter: str = "linear", readback_depth: int = 2,
                 ctx: Any = None) -> None:
        self.ctx = ctx or create_headless_context()
        self._own_ctx = ctx is None
        self.chain = EffectChain(self.ctx, list(effects), (width, height), fit=fit, filter=filter)
        self.readback = AsyncReadback(self.ctx, width, height, 3, depth=readback_depth)

    @property
    def size(self) -> tuple[int, int]:
        return self.chain.size

    def push_frame(self, frame: Any) -> None:
        self.chain.push_frame(frame)

    def set_params(self, params: Mapping[str, float]) -> None:
        self.chain.set_params(params)

    def render(self, time_s: float = 0.0) -> np.ndarray | None:
        """Draw a frame and start reading it back; returns an earlier frame's (H, W, 3) pixels
        once the readback ring is full (reused buffer: consume before the next call)."""
        return self.readback.submit(self.chain.render(time_s))

    def drain(self) -> list[np.ndarray]:
        return self.readback.drain()

    def render_sync(self, time_s: float = 0.0) -> np.ndarray:
        """Draw a frame and return its (H, W, 3) uint8 pixels (a fresh array)."""
        self.chain.render(time_s)
        return self.chain.read().copy()

    def close(self) -> None:
        self.readback.release()
        self.chain.release()
        if self._own_ctx:
            self.ctx.release()

    def __enter__(self) -> "HeadlessRenderer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
