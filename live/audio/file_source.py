"""Audio files as a block source: the same hop-sized mono blocks a live input delivers.

The file is read by ``phosphene.audio_file.load_audio`` (libsndfile, or FFmpeg for MP3, AAC, a
video's audio track), which sanitizes it: every block is finite and within [-1, 1]. Offline
analysis of long files streams instead (``AudioFileStream.mono_hops``: the same blocks).
Blocks come as fast as the consumer takes them (rendering) or paced to the wall clock
(``realtime=True``, for rehearsing a set from a recording).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from phosphene.audio_file import load_audio, to_mono   # the one audio-file loader


class FileSource:
    """Hop-sized mono blocks from a file: the offline twin of ``AudioIn``."""

    def __init__(self, path: str | Path, channel: int | None = None):
        audio = load_audio(path)
        self.path = audio.path
        self.sample_rate = audio.sample_rate
        self.channels = audio.samples.shape[1]
        self.mono = to_mono(audio.samples, channel)
        self.due_at = 0.0     # when the newest block was due (live: when it would have arrived)

    @property
    def duration_s(self) -> float:
        return len(self.mono) / self.sample_rate

    def blocks(self, hop_length: int, realtime: bool = False,
               start_sample: int = 0) -> Iterator[np.ndarray]:
        """Yield consecutive blocks of ``hop_length`` samples; the last one is zero-padded.
        With ``realtime``, each block is released no earlier than it would arrive live.
        ``start_sample`` (a multiple of the hop): where to go on from (a restarted reader)."""
        x = self.mono
        n_blocks = -(-len(x) // hop_length)
        first = start_sample // hop_length
        start = time.monotonic() - first * hop_length / self.sample_rate
        for k in range(first, n_blocks):
            block = x[k * hop_length:(k + 1) * hop_length]
            if len(block) < hop_length:
                block = np.concatenate([block, np.zeros(hop_length - len(block), np.float32)])
            if realtime:
                due = start + (k + 1) * hop_length / self.sample_rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.due_at = due
            else:
                self.due_at = time.monotonic()
            yield block
