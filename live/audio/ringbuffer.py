"""A single-producer / single-consumer ring buffer of audio frames, safe for a PortAudio callback.

The audio thread (producer for input, consumer for output) must never wait on the Python side:
no lock, no buffer allocation, no logging. Each side owns one monotonically increasing counter
(frames written, frames read) and only ever reads the other's. A Python int assignment is atomic
under the GIL, and each side publishes its counter *after* touching the samples, so the other side
never sees a frame before it is complete.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Fixed-capacity FIFO of frames: shape ``(capacity,)`` (mono) or ``(capacity, channels)``.

    ``capacity`` is rounded up to a power of two so positions are a mask of the counters.
    When the writer would overrun unread frames, the incoming block is dropped whole and counted
    in ``overflows`` (the reader's data stays consistent); a reader asking for more than is there
    gets nothing and may count an underflow itself.
    """

    def __init__(self, capacity: int, channels: int | None = None, dtype=np.float32):
        if capacity < 1:
            raise ValueError(f"ring buffer capacity must be >= 1 frame, got {capacity}")
        size = 1 << (int(capacity) - 1).bit_length()
        shape = (size,) if channels is None else (size, int(channels))
        self._buf = np.zeros(shape, dtype=dtype)
        self._mask = size - 1
        self.capacity = size
        self.channels = channels
        self._written = 0   # frames ever written: only the producer assigns this
        self._read = 0      # frames ever read: only the consumer assigns this
        self.overflows = 0  # producer-side count of dropped blocks
        self.dropped_frames = 0

    # -- either side --------------------------------------------------------------------------
    @property
    def frames_written(self) -> int:
        return self._written

    @property
    def frames_read(self) -> int:
        return self._read

    def available(self) -> int:
        """Frames written and not yet read."""
        return self._written - self._read

    def free(self) -> int:
        return self.capacity - (self._written - self._read)

    # -- producer -----------------------------------------------------------------------------
    def write(self, data: np.ndarray) -> int:
        """Append all of ``data`` (first axis = frames) or nothing; returns frames written."""
        n = data.shape[0]
        written = self._written
        if n > self.capacity - (written - self._read):
            self.overflows += 1
            self.dropped_frames += n
            return 0
        start = written & self._mask
        first = min(n, self.capacity - start)
        self._buf[start:start + first] = data[:first]
        if first < n:
            self._buf[:n - first] = data[first:]
        self._written = written + n  # publish after the copy
        return n

    # -- consumer -----------------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (first axis = frames) if that many frames are there; returns frames read
        (``len(out)`` or 0 — never a partial block, so hops stay aligned)."""
        n = out.shape[0]
        read = self._read
        if self._written - read < n:
            return 0
        start = read & self._mask
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start:start + first]
        if first < n:
            out[first:] = self._buf[:n - first]
        self._read = read + n  # publish after the copy
        return n

    def read_available_into(self, out: np.ndarray) -> int:
        """Fill as much of ``out`` as there is data for; returns frames read (may be partial).
        Used by an output callback that must hand PortAudio *something* every period."""
        n = min(out.shape[0], self._written - self._read)
        if n <= 0:
            return 0
        return self.read_into(out[:n])

    def discard(self, frames: int) -> int:
        """Drop up to ``frames`` of the oldest unread frames (consumer side); returns how many."""
        n = max(0, min(int(frames), self._written - self._read))
        self._read += n
        return n

    def clear(self) -> None:
        """Drop unread frames (consumer side)."""
        self._read = self._written
