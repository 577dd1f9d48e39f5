"""The frames a recorded live run presented, drawn again from the recording.

A live display is paced by the wall clock and its generator worker renders whichever request
is newest, so which show state and which generator frame end up together on screen is decided
by timing. ``phosphene live --record`` writes that down per presented frame (``frames.jsonl``,
see ``phosphene.live.runtime.recording.FrameRecord``); everything else is a pure function of the
recorded audio and events. ``LiveFrameReplay`` re-runs the analyzer and the show over the
recording (a ``Session`` in a ``ShowTimeline``, as ``render --replay`` does), renders each
recorded generator request singly (as the live worker does) and draws with the ``ChainDriver`` at the recorded
crossfade position -- so at the recorded size it gives the frames the audience saw.

``frames()`` draws the recorded frames in order: exact also for effects with history
(feedback trails), and the crossfade blends from the same previous frame. ``frame()`` draws one
frame from (state, request[, previous, position]) on a fresh chain: exact for chains without
history. This is a check and an API; the video path (``render --replay``) stays evaluated at
video frame times.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phosphene.audio_file import load_audio, to_mono
from phosphene.errors import PhospheneError
from phosphene.live.runtime.offline import ShowTimeline
from phosphene.live.runtime.recording import FrameRecord, read_frames, read_recording
from phosphene.live.runtime.session import Session, open_generator, source_from_recording
from phosphene.render.context import create_headless_context
from phosphene.render.driver import ChainDriver


@dataclass(frozen=True)
class ReplayedFrame:
    record: FrameRecord
    state: Any                   # the ShowState drawn (the replay's)
    pixels: np.ndarray           # (H, W, 3) uint8, a copy


class LiveFrameReplay:
    """Reproduces presented frames of the recording in ``directory``.

    ``generator``: an already loaded model (tests share one); otherwise ``model`` or the
    recording's model source is loaded on ``device`` (as live: ``auto``; pixels are exact on
    the device the set was played on, its ``session.json`` names it). ``size``: the canvas,
    default the recorded display size."""

    def __init__(self, directory: str | Path, *, generator: Any = None, model: str | None = None,
                 device: str = "auto", size: tuple[int, int] | None = None):
        self.directory = Path(directory)
        source, audio_path = source_from_recording(self.directory, model)
        self.source = source
        self.records = read_frames(self.directory)
        display = read_recording(self.directory).session.get("display") or {}
        self.size = size or ((int(display["width"]), int(display["height"])) if display else
                             (source.preset.output.width, source.preset.output.height))
        audio = load_audio(audio_path)
        self.sample_rate = audio.sample_rate
        self._mono = to_mono(audio.samples)
        self.generator, _ = open_generator(source.model_source, device, generator=generator,
                                           max_batch=1, deterministic=True)
        self.device = self.generator.device

    def _new_timeline(self) -> ShowTimeline:
        return ShowTimeline(self._mono, Session(self.source, self.sample_rate, self.generator),
                            self.source.events)

    # -- show states -----------------------------------------------------------------------------
    def states(self, sample_indices: Iterable[int]) -> dict[int, Any]:
        """The show state at each of ``sample_indices`` (hop ends, or 0 for the start)."""
        timeline = self._new_timeline()
        return {s: timeline.state_at(s) for s in sorted(set(sample_indices))}

    def _states_along(self, records: list[FrameRecord]) -> Iterator[dict[int, Any]]:
        """For each record in turn, the states it needs, from one pass over the recording.
        A state is dropped after its last use, so memory stays bounded on a long set (records
        come in display order; a request index is close to its state index)."""
        needed = sorted({i for r in records for i in r.sample_indices})
        last_use = {i: n for n, r in enumerate(records) for i in r.sample_indices}
        timeline = self._new_timeline()
        cache: dict[int, Any] = {}
        next_needed = 0
        for n, record in enumerate(records):
            top = max(record.sample_indices)
            while next_needed < len(needed) and needed[next_needed] <= top:
                s = needed[next_needed]
                cache[s] = timeline.state_at(s)
                next_needed += 1
            yield cache
            for i in record.sample_indices:
                if last_use[i] == n:
                    cache.pop(i, None)

    # -- frames ----------------------------------------------------------------------------------
    def frames(self, records: list[FrameRecord] | None = None) -> Iterator[ReplayedFrame]:
        """Draw ``records`` (default: every recorded frame) in display order."""
        records = self.records if records is None else list(records)
        if not records:
            raise PhospheneError(f"{self.directory}: no presented frames recorded "
                                 "(frames.jsonl is missing or empty)")
        ctx = create_headless_context()
        driver = ChainDriver(ctx, self.size, self.sample_rate)
        image_of: tuple[int, Any] | None = None       # (request index, generator output)
        try:
            for record, states in zip(records, self._states_along(records)):
                state = states[record.state]
                image = None
                if record.request is not None:
                    if image_of is None or image_of[0] != record.request:
                        image_of = (record.request,
                                    self.generator.generate(states[record.request].request))
                    image = image_of[1]
                canvas = record.canvas or self.size      # the display budget's size, as live
                if tuple(canvas) != tuple(driver.size):
                    driver.resize(canvas)
                driver.draw(state, image, frame_id=record.seq, frame_sample=record.request,
                            position=record.position)
                yield ReplayedFrame(record, state, driver.read().copy())
        finally:
            driver.release()
            ctx.release()

    def frame(self, state_index: int, request_index: int, previous_index: int | None = None,
              position: float | None = 1.0) -> np.ndarray:
        """One frame on a fresh chain: the state at ``state_index`` over the generator frame of
        the request at ``request_index`` (crossfading from ``previous_index``'s at
        ``position``). Equal to the live frame for chains without history effects."""
        previous = request_index if previous_index is None else previous_index
        records = [FrameRecord(0, state_index, previous, previous, 1, position),
                   FrameRecord(1, state_index, request_index, previous, 2, position)]
        *_, last = self.frames(records)
        return last.pixels
