"""The clip player: bank material triggered by OSC/MIDI, mixed on the audio sample clock.

``/phosphene/clip/play <name> [gain]`` starts a voice, ``/clip/stop <name>`` ends that clip's
voices, ``/clip/stopall`` ends all. Once per hop the engine asks ``mix(block_start, frames)``
for the block of clip audio that belongs to samples ``block_start .. block_start+frames``; it
goes to the output stream and (preset ``clips.feed_analyzer``) into the analyzer's input, so
the visuals react to a clip exactly as they would to the same sound from the microphone.

A voice starts at the sample its event was stamped with (clamped to the block being mixed), so
where a clip lands depends only on the sample clock: a recorded set re-renders identically.

Names are names: the bank validates every name against its safe alphabet and only ever opens
files its own manifest lists, so nothing from the network becomes a path.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from phosphene.audio_file import sanitize_audio
from phosphene.errors import PhospheneError
from phosphene.models.bank.loudness import resample

log = logging.getLogger(__name__)

MAX_VOICES = 16        # a stuck trigger (a MIDI note bound to play) cannot pile up voices


@dataclass
class _Voice:
    name: str
    samples: np.ndarray   # (frames, channels) at the engine's rate, gain not applied
    gain: float
    start: int            # sample index where the clip's first sample plays
    position: int = 0     # next clip frame to play


class ClipPlayer:
    """Mixes clips from a ``Bank`` at ``sample_rate`` into ``channels``-channel blocks.

    ``play``/``stop``/``stop_all``/``mix`` are called from one thread (the engine's analysis
    loop); only the cache is shared with the preloading thread.
    """

    def __init__(self, bank, sample_rate: int, channels: int = 2, gain: float = 1.0):
        self.bank = bank
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.gain = float(gain)                 # the preset's clips.gain
        self._cache: dict[str, np.ndarray] = {}
        self._voices: list[_Voice] = []
        self._mix = np.zeros((0, self.channels), np.float32)
        self._failed: set[str] = set()
        self.played: dict[str, int] = {}        # name -> times started
        self.errors = 0                         # plays refused (unknown clip, unreadable file)

    # -- loading ------------------------------------------------------------------------------
    def load(self, name: str) -> np.ndarray:
        """The clip's samples at the engine's rate and channel count (cached)."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        samples, rate = self.bank.load_audio(name)     # validates the name, raises BankError
        if not np.isfinite(samples).all():
            # a hand-made file the bank lists (``bank add`` refuses such audio): NaN would reach
            # the analyzer with the clip (the output itself is made safe in AudioOut)
            log.warning("clip %s: NaN or infinite samples set to silence", name)
            samples = sanitize_audio(samples, out=samples)
        samples = resample(samples, int(rate), self.sample_rate)
        if samples.shape[1] != self.channels:
            mono = samples.mean(axis=1, keepdims=True)
            samples = np.repeat(mono, self.channels, axis=1)
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        self._cache[name] = samples
        return samples

    def preload(self) -> threading.Thread:
        """Load every clip of the bank in the background, so the first trigger of a clip does
        not read the disk on the audio path. Returns the (daemon) thread."""
        def run() -> None:
            try:
                names = self.bank.names()
            except Exception as exc:  # noqa: BLE001 - a broken manifest: clips load on demand
                log.warning("clip bank %s: cannot list clips: %s", self.bank.path, exc)
                return
            for name in names:
                try:
                    self.load(name)
                except Exception as exc:  # noqa: BLE001
                    log.warning("clip %s not preloaded: %s", name, exc)
            log.info("clip bank %s: %d clip(s) ready", self.bank.path, len(self._cache))

        thread = threading.Thread(target=run, name="phosphene-clip-preload", daemon=True)
        thread.start()
        return thread

    # -- control ------------------------------------------------------------------------------
    def play(self, name: str, gain: float = 1.0, at_sample: int = 0) -> bool:
        """Start ``name`` at sample ``at_sample``; False (logged once per name) if it cannot."""
        try:
            samples = self.load(name)
        except PhospheneError as exc:
            self._refuse(name, str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - an unreadable file must not stop the show
            self._refuse(name, f"{type(exc).__name__}: {exc}")
            return False
        if len(self._voices) >= MAX_VOICES:
            self._voices.pop(0)        # the oldest voice makes room
        self._voices.append(_Voice(name, samples, float(gain), int(at_sample)))
        self.played[name] = self.played.get(name, 0) + 1
        log.info("clip %s playing (gain %.2f)", name, gain)
        return True

    def stop(self, name: str) -> None:
        self._voices = [v for v in self._voices if v.name != name]

    def stop_all(self) -> None:
        self._voices = []

    @property
    def playing(self) -> list[str]:
        return [v.name for v in self._voices]

    def _refuse(self, name: str, reason: str) -> None:
        self.errors += 1
        if name not in self._failed:
            self._failed.add(name)
            log.warning("clip %r not played: %s", name, reason)

    # -- audio --------------------------------------------------------------------------------
    def mix(self, block_start: int, frames: int) -> np.ndarray | None:
        """Clip audio for samples ``block_start .. block_start + frames`` as ``(frames,
        channels)`` float32 (a buffer reused by the next call), or None when nothing plays."""
        if not self._voices:
            return None
        if self._mix.shape[0] != frames:
            self._mix = np.zeros((frames, self.channels), np.float32)
        out = self._mix
        out[:] = 0.0
        alive = []
        for v in self._voices:
            offset = min(max(v.start - block_start, 0), frames)   # where in this block it starts
            n = min(frames - offset, v.samples.shape[0] - v.position)
            if n > 0:
                out[offset:offset + n] += v.samples[v.position:v.position + n] * (v.gain * self.gain)
                v.position += n
            if v.position < v.samples.shape[0]:
                alive.append(v)
        self._voices = alive
        return out
