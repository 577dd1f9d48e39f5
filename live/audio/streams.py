"""Live audio input and output on PortAudio (sounddevice), built for a show that must not stop.

The PortAudio callback runs on the audio thread and does only this: copy samples between the
device buffer and a preallocated ``RingBuffer``, bump counters, return. No buffer allocation,
no lock, no logging, nothing whose cost grows — the JUCE ``processBlock`` rule. Everything else
happens on other threads:

- the consumer (analyzer / engine) reads hop-sized blocks from the input ring, or pushes mixed
  blocks into the output ring;
- a supervisor thread watches the stream. When the device goes away (an interface unplugged,
  the sound server's sink removed) the callbacks stop: it logs once, closes the stream, and tries
  to reopen the same device every ``retry_interval_s``. Meanwhile ``AudioIn`` hands out silence
  at the real-time rate, so the sample clock and the visuals keep going; when the device returns
  the real samples resume.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.supervision import Supervisor
from phosphene.live.audio import devices
from phosphene.live.audio.limiter import safe_for_output
from phosphene.live.audio.ringbuffer import RingBuffer
from phosphene.live.audio.sound_server import InputRoute

log = logging.getLogger(__name__)

# Callback time stamps kept (a power of two): more callbacks than the input ring holds.
STAMPS = 4096
STAMP_MASK = STAMPS - 1
# How often the watchdog asks the sound server where the input stream records from.
ROUTE_CHECK_S = 0.5


class _SupervisedStream:
    """Open/close/watch/reopen logic shared by input and output."""

    kind = "input"

    def __init__(self, device: int | str | None, samplerate: float | None, blocksize: int,
                 latency: str | float, channels: int | None, buffer_s: float,
                 retry_interval_s: float, stall_timeout_s: float):
        if blocksize < 0:
            raise PhospheneError(f"block size must be >= 0 frames, got {blocksize}")
        self.device_spec = device
        self.blocksize = int(blocksize)
        self.latency = latency
        self.retry_interval_s = retry_interval_s
        self.stall_timeout_s = stall_timeout_s
        # Some back ends (PulseAudio's ALSA plugin at low latency) pause for a second or two
        # right after opening; a stall in that window is not a loss.
        self.start_timeout_s = max(stall_timeout_s, 5.0)
        info = devices.find_device(device, self.kind)
        self.device_name = info.name
        self.samplerate = int(samplerate or info.default_samplerate)
        available = info.max_input_channels if self.kind == "input" else info.max_output_channels
        self.channels = int(channels or min(2, available))
        if not 1 <= self.channels <= available:
            raise PhospheneError(f"audio {self.kind} device {info.name!r} has {available} "
                                 f"channel(s); {self.channels} requested")
        self._buffer_frames = max(int(buffer_s * self.samplerate), 4 * max(self.blocksize, 256))
        self._stream = None
        self._lock = threading.Lock()       # guards open/close; never taken by the callback
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.supervisor: Supervisor | None = None     # the engine's, or one of its own
        self.lost = False                   # True while the device is gone
        self.losses = 0                     # times the device went away
        self.reconnects = 0                 # times it came back
        self.status_flags = 0               # callbacks that reported an xrun/status
        self._callbacks = 0                 # callbacks served (the supervisor's heartbeat)
        self._route: InputRoute | None = None   # the input's source on a sound server
        self.moved_to: str | None = None    # where the server last moved the stream to

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self):
        with self._lock:
            self._open()
        self._stop.clear()
        # the device watchdog itself runs supervised: if it fails it is restarted, so a lost
        # device is still noticed and reopened
        self.supervisor = self.supervisor or Supervisor()
        self._supervisor = self.supervisor.thread(
            f"audio-{self.kind}", self._supervise, should_stop=self._stop.is_set)
        self._supervisor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5.0)
            self._supervisor = None
        with self._lock:
            self._close()
            if self._route is not None:
                self._route.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_running(self, timeout: float = 10.0) -> bool:
        """Wait until the device has delivered (or taken) its first block."""
        deadline = time.monotonic() + timeout
        start = self._callbacks
        while self._callbacks == start and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._callbacks != start

    def stats(self) -> dict:
        stats = {"device": self.device_name, "samplerate": self.samplerate,
                 "overflows": self._ring.overflows, "status_flags": self.status_flags,
                 "losses": self.losses, "reconnects": self.reconnects, "lost": self.lost}
        if self._route is not None and self._route.chosen is not None:
            stats["source"] = self._route.chosen        # on a sound server
            if self.moved_to is not None:
                stats["moved_to"] = self.moved_to
        return stats

    # -- stream handling (supervisor thread or start/stop, under _lock) ------------------------
    def _make_stream(self, index: int):
        raise NotImplementedError

    def _open(self) -> None:
        try:
            info = devices.find_device(self.device_spec, self.kind)
        except PhospheneError:
            # maybe it came back under a new index: PortAudio only sees it after a rescan
            if not devices.rescan():
                raise
            info = devices.find_device(self.device_spec, self.kind)
        stream = self._make_stream(info.index)
        devices.note_stream_opened()
        try:
            stream.start()
        except Exception:
            stream.close(ignore_errors=True)
            devices.note_stream_closed()
            raise
        self._stream = stream
        self.device_name = info.name
        if self._route is not None:
            self._route.bind()          # the chosen source; or back to it after a move

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001 - a dead device may refuse even to close
            log.debug("closing the lost %s stream failed", self.kind, exc_info=True)
        devices.note_stream_closed()

    def _supervise(self) -> None:
        last_count, last_progress = self._callbacks, time.monotonic()
        next_retry = 0.0
        next_route_check = 0.0
        opened_at = time.monotonic()  # a freshly opened stream may take a while to get going
        while not self._stop.wait(0.1):
            now = time.monotonic()
            with self._lock:
                if self._stop.is_set():
                    return
                if self._stream is not None:
                    moved = None
                    if self._route is not None and now >= next_route_check:
                        next_route_check = now + ROUTE_CHECK_S
                        moved = self._route.moved_to()
                    if moved is not None:
                        # the server put another source in its place: not what the show hears
                        self._lose(f"the sound server moved it from {self._route.chosen!r} to "
                                   f"{moved!r}; continuing with silence until "
                                   f"{self._route.chosen!r} is back")
                        self.moved_to = moved
                        next_retry = now + self.retry_interval_s
                        continue
                    if self._callbacks != last_count:
                        last_count, last_progress = self._callbacks, now
                        continue
                    starting = now - opened_at < self.start_timeout_s
                    timeout = self.start_timeout_s if starting else self.stall_timeout_s
                    if self._stream.active and now - last_progress < timeout:
                        continue
                    # no callbacks: the device is gone (or hung) — go to silence, retry
                    self._lose(f"continuing with silence and retrying every "
                               f"{self.retry_interval_s:.0f} s")
                    next_retry = now + self.retry_interval_s
                elif now >= next_retry:
                    next_retry = now + self.retry_interval_s
                    if self._route is not None and not self._route.chosen_present():
                        continue            # reopening now would land on the substitute
                    try:
                        with devices.quiet_audio_libraries():   # the loss was logged once; no noise
                            self._open()
                    except Exception as exc:  # noqa: BLE001 - still gone; try again later
                        log.debug("reopening audio %s failed: %s", self.kind, exc)
                        continue
                    log.info("audio %s %r is back", self.kind, self.device_name)
                    last_count, last_progress = self._callbacks, now
                    opened_at = now
                    self.reconnects += 1
                    self.lost = False

    def _lose(self, why: str) -> None:
        """The device is gone (or replaced): say so once, close, go to silence."""
        log.warning("audio %s %r lost: %s", self.kind, self.device_name, why)
        self._close()
        self._on_lost()
        self.lost = True
        self.losses += 1

    def _on_lost(self) -> None:
        pass


class AudioIn(_SupervisedStream):
    """Input stream delivering mono hop-sized blocks: the mean of the opened channels, or one
    chosen ``channel`` (0-based)."""

    kind = "input"

    def __init__(self, device: int | str | None = None, samplerate: float | None = None,
                 blocksize: int = 256, channel: int | None = None, channels: int | None = None,
                 latency: str | float = "low", buffer_s: float = 2.0,
                 retry_interval_s: float = 1.0, stall_timeout_s: float = 1.0):
        if channel is not None and channel < 0:
            raise PhospheneError(f"input channel must be >= 0, got {channel}")
        if channel is not None and channels is None:
            channels = channel + 1
        super().__init__(device, samplerate, blocksize, latency, channels, buffer_s,
                         retry_interval_s, stall_timeout_s)
        if channel is not None and channel >= self.channels:
            raise PhospheneError(f"input channel {channel} does not exist on "
                                 f"{self.device_name!r} ({self.channels} channels opened)")
        self.channel = channel
        self._route = InputRoute()
        self._ring = RingBuffer(self._buffer_frames)
        # When each callback delivered its samples (honest latency): the callback writes the
        # ring's frame count after its block and the time, in preallocated arrays; a reader
        # finds the callback that delivered a block's last sample (``delivered_at``).
        self._stamp_frames = np.zeros(STAMPS, dtype=np.int64)
        self._stamp_times = np.zeros(STAMPS, dtype=np.float64)
        self._stamps = 0                # stamps ever written (the callback's counter)
        self._stamp_cursor = 0          # the reader's position in them
        self.delivered_at = 0.0         # when the newest block read reached this process
        self._mix = np.zeros(max(self.blocksize, 8192), dtype=np.float32)
        self._inv_channels = np.float32(1.0 / self.channels)
        self.samples_delivered = 0   # the sample clock: real samples and silence alike
        self.silent_blocks = 0       # blocks of silence handed out while the device was lost
        self._silence_due = 0.0

    def _make_stream(self, index: int):
        import sounddevice as sd

        return sd.InputStream(device=index, samplerate=self.samplerate, blocksize=self.blocksize,
                              channels=self.channels, dtype="float32", latency=self.latency,
                              callback=self._callback)

    # The audio thread. Copy, count, return.
    def _callback(self, indata, frames, time_info, status) -> None:
        if status:
            self.status_flags += 1
        if self.channel is not None:
            self._ring.write(indata[:, self.channel])
        elif self.channels == 1:
            self._ring.write(indata[:, 0])
        elif frames <= self._mix.shape[0]:
            mix = self._mix[:frames]
            np.sum(indata, axis=1, out=mix)
            mix *= self._inv_channels
            self._ring.write(mix)
        else:
            self._ring.overflows += 1
        k = self._stamps & STAMP_MASK
        self._stamp_frames[k] = self._ring.frames_written
        self._stamp_times[k] = time.monotonic()
        self._stamps += 1              # published after the stamp, as the ring does
        self._callbacks += 1

    def _on_lost(self) -> None:
        self._silence_due = time.monotonic()

    def _delivery_time(self, frames_read: int) -> float:
        """When the callback that wrote sample ``frames_read - 1`` ran."""
        stamps = self._stamps
        cursor = max(self._stamp_cursor, stamps - STAMPS + 1)
        while cursor < stamps and self._stamp_frames[cursor & STAMP_MASK] < frames_read:
            cursor += 1
        self._stamp_cursor = cursor
        if cursor >= stamps:            # not stamped yet (cannot happen in order): now
            return time.monotonic()
        return float(self._stamp_times[cursor & STAMP_MASK])

    def read(self, out: np.ndarray, timeout: float | None = None) -> bool:
        """Fill ``out`` (mono float32) with the next ``len(out)`` samples. Waits for the device;
        while it is lost, fills silence at the real-time rate. False on timeout or stop."""
        n = out.shape[0]
        hop_s = n / self.samplerate
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set() or self._ring.available() >= n:
            if self._ring.read_into(out):
                self.samples_delivered += n
                self.delivered_at = self._delivery_time(self._ring.frames_read)
                return True
            if self.lost:
                now = time.monotonic()
                due = self._silence_due
                if now >= due:
                    self._silence_due = max(due, now - 0.5) + hop_s
                    self.delivered_at = now
                    out[:] = 0.0
                    self.samples_delivered += n
                    self.silent_blocks += 1
                    return True
                time.sleep(min(due - now, hop_s))
            else:
                time.sleep(hop_s / 4.0)
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return False

    def blocks(self, hop_length: int) -> Iterator[np.ndarray]:
        """Hop-sized mono blocks until ``stop()``; each block is a new array."""
        while True:
            out = np.empty(hop_length, dtype=np.float32)
            if not self.read(out, timeout=0.5):
                if self._stop.is_set():
                    return
                continue
            yield out

    def drain(self) -> None:
        """Drop what is buffered (e.g. after a pause) so the next block is fresh."""
        self._ring.clear()


class AudioOut(_SupervisedStream):
    """Output stream fed through a ring buffer: the engine pushes mixed blocks with ``play``
    (or ``write``); the callback plays what is there and pads with silence (counted in
    ``underflows`` when a block ran short mid-play). Every sample is made finite and
    soft-limited on the way in (``limiter.safe_for_output``), so nothing non-finite or at full
    scale reaches a speaker, whatever the caller hands over.

    How much may wait in the queue (the output's latency beyond the device buffer) is a
    policy, because a sound server does stall: PulseAudio (ALSA ``pulse`` plugin) takes 0.6 to
    1.9 s to restart a stream after an underrun under CPU load, and the same at every open.
    Skipping new blocks once 0.1 s was queued lost everything played during such a stall and
    after it (3.75 of 7.85 s of clips heard in one run). Instead, so a clip plays out whole:

    - a block that must come out whole (``play(block, droppable=False)``: one with clip audio)
      is always queued: after a stall the clip goes on where it stopped, late by the stall,
      instead of losing what was played meanwhile;
    - the latency is won back in the other blocks: silence, or a live monitor (the
      ``--audio-file`` alone, which must stay in time with the picture) is not queued while
      more than ``queue_s`` waits (``skipped_blocks``);
    - a hard bound, ``max_queue_s``: above it the callback drops the *oldest* frames
      (``dropped_s``), so the output is never more than that late, even after stall upon
      stall during one long clip.

    The stall timeout is 5 s (not the input's 1 s): a server that is merely slow resumes by
    itself, while a sink that really went away (unloaded, server gone) makes the PortAudio
    stream inactive, which the supervisor notices at once. Declaring a loss on a slow server
    closed the stream, cleared what was queued, and reopened after another 1 s plus a start-up
    stall: three times the audio lost for nothing.
    """

    kind = "output"

    def __init__(self, device: int | str | None = None, samplerate: float | None = None,
                 blocksize: int = 256, channels: int | None = None,
                 latency: str | float = "low", buffer_s: float | None = None,
                 retry_interval_s: float = 1.0, stall_timeout_s: float = 5.0,
                 queue_s: float = 0.1, max_queue_s: float = 2.5):
        if not 0 < queue_s <= max_queue_s:
            raise PhospheneError(f"output queue bounds must satisfy 0 < queue_s <= max_queue_s, "
                                 f"got {queue_s} and {max_queue_s}")
        # the ring holds more than the bound, so a stall fills it without refusing new blocks;
        # the callback trims it to the bound when the stream resumes
        buffer_s = max_queue_s + 1.5 if buffer_s is None else max(buffer_s, max_queue_s)
        super().__init__(device, samplerate, blocksize, latency, channels, buffer_s,
                         retry_interval_s, stall_timeout_s)
        self._ring = RingBuffer(self._buffer_frames, channels=self.channels)
        self._queue_frames = int(queue_s * self.samplerate)
        self._max_queue_frames = int(max_queue_s * self.samplerate)
        self.underflows = 0
        self.dropped_frames = 0        # oldest frames dropped to keep within max_queue_s
        self.skipped_blocks = 0        # droppable blocks not queued, to win latency back
        self.blocks_while_lost = 0     # blocks handed over while the device was gone

    def _make_stream(self, index: int):
        import sounddevice as sd

        return sd.OutputStream(device=index, samplerate=self.samplerate,
                               blocksize=self.blocksize, channels=self.channels, dtype="float32",
                               latency=self.latency, callback=self._callback)

    # The audio thread. Trim, copy, pad, count, return.
    def _callback(self, outdata, frames, time_info, status) -> None:
        if status:
            self.status_flags += 1
        excess = self._ring.available() - self._max_queue_frames
        if excess > 0:    # back from a long stall: drop the oldest, keep the bound
            self.dropped_frames += self._ring.discard(excess)
        n = self._ring.read_available_into(outdata)
        if n < frames:
            outdata[n:] = 0.0
            if n > 0:
                self.underflows += 1
        self._callbacks += 1

    def _on_lost(self) -> None:
        self._ring.clear()  # the callback is gone, so this thread may act as the consumer

    def play(self, block: np.ndarray, droppable: bool = True) -> int:
        """The live path: queue ``block`` (as ``write``) unless the device is gone (nothing
        would play it; a stale queue would play late when it returns), or the output is behind
        and the block is ``droppable`` or silent (see the class comment). Returns frames
        queued."""
        if self.lost or self._stream is None:
            self.blocks_while_lost += 1
            return 0
        if self._ring.available() > self._queue_frames and (droppable or _is_silent(block)):
            self.skipped_blocks += 1
            return 0
        return self.write(block)

    def write(self, block: np.ndarray) -> int:
        """Queue ``block`` — ``(frames,)`` mono (sent to every channel) or ``(frames,
        channels)`` — without waiting, made finite and soft-limited. Returns frames queued:
        all, or 0 if it does not fit."""
        block = safe_for_output(block)
        if block.ndim == 1:
            block = np.repeat(block[:, None], self.channels, axis=1)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"output block must be (frames,) or (frames, {self.channels}), "
                             f"got {block.shape}")
        return self._ring.write(block)

    def write_blocking(self, block: np.ndarray, timeout: float = 1.0) -> int:
        """``write``, waiting up to ``timeout`` for room (not for the audio thread to use)."""
        frames = block.shape[0]
        deadline = time.monotonic() + timeout
        room = min(self._ring.capacity, self._max_queue_frames)   # the callback trims above
        while (self._ring.available() + frames > room
               and time.monotonic() < deadline):
            time.sleep(self.blocksize / self.samplerate / 2 or 0.002)
        return self.write(block)

    def queued_frames(self) -> int:
        return self._ring.available()

    def latency_s(self) -> float:
        """How long a block handed over now takes to be heard: what is queued ahead of it
        and the device's own buffer (as PortAudio reports it)."""
        try:
            device = float(self._stream.latency) if self._stream is not None else 0.0
        except Exception:  # noqa: BLE001 - a stream closed meanwhile (a lost device)
            device = 0.0
        return self._ring.available() / self.samplerate + device

    def stats(self) -> dict:
        return {**super().stats(), "underflows": self.underflows,
                "dropped_s": self.dropped_frames / self.samplerate,
                "skipped_blocks": self.skipped_blocks,
                "blocks_while_lost": self.blocks_while_lost}


def _is_silent(block: np.ndarray) -> bool:
    """Nothing audible in ``block`` (all below -80 dBFS; NaN counts as nothing)."""
    return not bool(np.any(np.abs(block) > 1e-4))
