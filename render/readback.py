"""Asynchronous framebuffer readback through a ring of pixel-pack buffers (PBOs).

``fbo.read_into(buffer)`` with a moderngl Buffer starts a glReadPixels into GPU-side memory and
returns at once on drivers that support it; mapping that buffer one or more frames later finds
the copy finished, so reading back never stalls the pipeline. With ``depth`` buffers, frame N's
pixels come out when frame N + depth - 1 is submitted; ``drain()`` returns the rest at the end.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np


class AsyncReadback:
    """Reads (height, width, components) uint8 frames from framebuffers, ``depth`` frames late.

    Returned arrays are views of buffers this object reuses: consume (encode, copy) a frame
    before ``depth`` further calls to ``submit``.
    """

    def __init__(self, ctx: Any, width: int, height: int, components: int = 3,
                 depth: int = 2) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.shape = (height, width, components)
        nbytes = width * height * components
        self._buffers = [ctx.buffer(reserve=nbytes) for _ in range(depth)]
        self._host = [np.empty(self.shape, np.uint8) for _ in range(depth)]
        self._pending: deque[int] = deque()
        self._next = 0

    def submit(self, fbo: Any) -> np.ndarray | None:
        """Start reading ``fbo``; return the oldest pending frame once the ring is full."""
        out = None
        if len(self._pending) == len(self._buffers):
            out = self._collect()
        slot = self._next
        self._next = (self._next + 1) % len(self._buffers)
        fbo.read_into(self._buffers[slot], components=self.shape[2], alignment=1)
        self._pending.append(slot)
        return out

    def _collect(self) -> np.ndarray:
        slot = self._pending.popleft()
        self._buffers[slot].read_into(self._host[slot])
        return self._host[slot]

    def drain(self) -> list[np.ndarray]:
        """The frames still in flight, oldest first (copies: safe to keep)."""
        frames = []
        while self._pending:
            frames.append(self._collect().copy())
        return frames

    def release(self) -> None:
        for buf in self._buffers:
            buf.release()
        self._buffers = []
