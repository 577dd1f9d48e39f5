"""The set-recording format: what ``phosphene live --record DIR`` writes and ``phosphene render
--replay DIR`` reads.

::

    DIR/audio.wav      the analyzer's input (microphone, plus clips where they feed it), mono
                       float32, written block by block as the show runs
    DIR/events.jsonl   one control event per line: {"sample_index", "address", "args", "origin"}
    DIR/session.json   sample rate, hop, the preset's name and full YAML text, the model source,
                       analyzer settings, phosphene version, start time; the display's size and
                       rate once it opens
    DIR/frames.jsonl   one line per presented frame (``FrameRecord``): the show state's sample
                       index, the request sample index of the generator frame on screen and of
                       the one before it (the crossfade's two inputs), the generator frame's
                       sequence number and the crossfade position -- everything a replay needs
                       to draw that exact frame again (``phosphene.live.runtime.replay``)

Everything is stamped with the audio sample index (the one clock), so a replay feeds the same
hops to the same analyzer and applies each event before the same hop.

Crash safety: every event line is flushed as it is written; the WAV is written by libsndfile
in blocks and its header finished on ``close()`` — after a crash, libsndfile still reads the
samples (a WAV whose header is short is read up to the data on disk, see ``read_recording``).
``session.json`` is written (atomically) when recording starts, so a crashed set still says
what it was. A truncated last event line (the crash hit mid-write) is skipped on read. Frame
lines are block-buffered (no system call per display frame): a crash loses the last few
seconds of them, never the events or audio a replay needs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.show.events import ControlEvent

log = logging.getLogger(__name__)

AUDIO_FILE = "audio.wav"
EVENTS_FILE = "events.jsonl"
SESSION_FILE = "session.json"
FRAMES_FILE = "frames.jsonl"
FORMAT_VERSION = 1


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("phosphene")
    except Exception:  # noqa: BLE001 - not installed as a distribution (running from source)
        return "unknown"


def _json_arg(value: Any) -> Any:
    """OSC/MIDI argument -> JSON (numpy scalars and bytes become plain values)."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class Recorder:
    """Records one set into ``directory`` (created; must be empty or new)."""

    def __init__(self, directory: str | Path, sample_rate: int, *, preset_text: str,
                 preset_name: str, model_source: str, hop_length: int | None = None,
                 analyzer_settings: dict | None = None, extra: dict | None = None):
        import soundfile as sf

        self.directory = Path(directory)
        if self.directory.exists() and any(self.directory.iterdir()):
            raise PhospheneError(f"recording folder {self.directory} is not empty; choose a new "
                                 "folder so an earlier set is not overwritten")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sample_rate = int(sample_rate)
        self.samples_written = 0
        self.events_written = 0
        self.session = {
            "format": FORMAT_VERSION,
            "sample_rate": self.sample_rate,
            "hop_length": hop_length,
            "preset_name": preset_name,
            "preset_yaml": preset_text,
            "model_source": model_source,
            "analyzer": analyzer_settings or {},
            "phosphene_version": _version(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(extra or {}),
        }
        _write_json_atomic(self.directory / SESSION_FILE, self.session)
        self._audio = sf.SoundFile(str(self.directory / AUDIO_FILE), mode="w",
                                   samplerate=self.sample_rate, channels=1, subtype="FLOAT",
                                   format="WAV")
        # line-buffered text: each event reaches the OS as its line ends
        self._events = open(self.directory / EVENTS_FILE, "w", encoding="utf-8", buffering=1)
        self._frames = None                 # opened by start_frames (the display thread's)
        self.frames_written = 0
        self.closed = False

    def write_audio(self, block: np.ndarray) -> None:
        """Append mono float32 samples (the block the analyzer got)."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._audio.write(block)
        self.samples_written += len(block)

    def write_event(self, event: ControlEvent, applied_at: int | None = None) -> None:
        """Append one event. ``applied_at``: the show's clock when the event was applied (the
        engine's ``block_start`` when it drains its queue). A replay applies the event before
        the first hop ending after its stamp, so stamping with ``applied_at`` makes the replay
        exact even for an event that arrived while a hop was being processed; the arrival
        stamp is kept as ``received``."""
        stamp = int(event.sample_index if applied_at is None else applied_at)
        record = {"sample_index": stamp, "address": event.address,
                  "args": [_json_arg(a) for a in event.args], "origin": event.origin}
        if stamp != event.sample_index:
            record["received"] = int(event.sample_index)
        self._events.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._events.flush()
        self.events_written += 1

    def start_frames(self, width: int, height: int, fps: float) -> None:
        """The display opened: note its size and rate, start ``frames.jsonl``."""
        self.session["display"] = {"width": int(width), "height": int(height), "fps": float(fps)}
        _write_json_atomic(self.directory / SESSION_FILE, self.session)
        # block-buffered: one short write per frame costs no system call on the display thread
        self._frames = open(self.directory / FRAMES_FILE, "w", encoding="utf-8")

    def write_frame(self, index: int, state_index: int, request_index: int | None,
                    previous_index: int | None, seq: int, position: float | None,
                    canvas: tuple[int, int] | None = None) -> None:
        """One presented frame (display thread): see ``FrameRecord`` for the fields."""
        if self._frames is None:
            return
        # formatted by hand: no dict per frame; repr() of a float reads back to the same float
        extra = "" if canvas is None else f',"canvas":[{int(canvas[0])},{int(canvas[1])}]'
        self._frames.write(
            f'{{"frame":{index},"state":{state_index},"request":{_json_int(request_index)},'
            f'"previous":{_json_int(previous_index)},"seq":{seq},'
            f'"position":{"null" if position is None else repr(float(position))}{extra}}}\n')
        self.frames_written += 1

    def close(self) -> None:
        """Finish the files (WAV header, final session facts). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._events.close()
        if self._frames is not None:
            self._frames.close()
            self.session["frames"] = self.frames_written
        self._audio.close()
        self.session["samples"] = self.samples_written
        self.session["duration_s"] = self.samples_written / self.sample_rate
        self.session["events"] = self.events_written
        _write_json_atomic(self.directory / SESSION_FILE, self.session)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Recording:
    audio_path: Path
    events: list[ControlEvent]
    session: dict

    def __iter__(self):                 # audio, events, session = read_recording(d)
        return iter((self.audio_path, self.events, self.session))


def parse_event_line(line: str, lineno: int, path: Path) -> ControlEvent:
    data = json.loads(line)
    if not isinstance(data, dict) or not isinstance(data.get("address"), str) \
            or not isinstance(data.get("sample_index"), int):
        raise ValueError("needs an integer sample_index and a string address")
    args = data.get("args", [])
    if not isinstance(args, list):
        raise ValueError("args must be a list")
    return ControlEvent(sample_index=data["sample_index"], address=data["address"],
                        args=tuple(args), origin=str(data.get("origin", "osc")))


def read_events(path: Path) -> list[ControlEvent]:
    """Events of an ``events.jsonl``; a broken *last* line (a crash mid-write) is skipped with a
    warning, a broken line elsewhere is an error naming the line."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    events = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_event_line(line, i, path))
        except (ValueError, TypeError) as exc:
            if i == len(lines):
                log.warning("%s: last line is incomplete (recording interrupted?), skipped", path)
                break
            raise PhospheneError(f"{path}, line {i}: not a control event: {exc}") from None
    return events


def read_recording(directory: str | Path) -> Recording:
    """``(audio path, events, session)`` of a recorded set; a clear error if it is not one."""
    d = Path(directory)
    if not d.is_dir():
        raise PhospheneError(f"recording folder {d} does not exist")
    session_path, audio_path = d / SESSION_FILE, d / AUDIO_FILE
    if not session_path.is_file():
        raise PhospheneError(f"{d} is not a phosphene recording: {SESSION_FILE} is missing")
    try:
        session = json.loads(session_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PhospheneError(f"{session_path}: cannot read it: {exc}") from None
    for key in ("sample_rate", "preset_yaml", "model_source"):
        if key not in session:
            raise PhospheneError(f"{session_path}: missing key {key!r}")
    if not audio_path.is_file():
        raise PhospheneError(f"{d} is not a complete recording: {AUDIO_FILE} is missing")
    return Recording(audio_path, read_events(d / EVENTS_FILE), session)


@dataclass(frozen=True)
class FrameRecord:
    """One frame the live display presented, as ``frames.jsonl`` holds it.

    ``state``: sample index of the show state drawn (effect parameters, audio time);
    ``request``: sample index of the latent request whose generator frame was newest on screen
    (None before the first); ``previous``: the same for the frame the crossfade blends from;
    ``seq``: the generator frame's sequence number (a change means a new frame was uploaded);
    ``position``: the crossfade position set (None when the chain has no crossfade);
    ``canvas``: the size it was drawn at when the display budget drew it smaller."""

    frame: int
    state: int
    request: int | None
    previous: int | None
    seq: int
    position: float | None
    canvas: tuple[int, int] | None = None   # drawn smaller than the display size (the budget)

    @property
    def sample_indices(self) -> tuple[int, ...]:
        return tuple(i for i in (self.state, self.request, self.previous) if i is not None)


def read_frames(directory: str | Path) -> list[FrameRecord]:
    """The presented frames of a recording (empty when it has no ``frames.jsonl``); a broken
    last line (a crash mid-write) is skipped."""
    path = Path(directory) / FRAMES_FILE
    if not path.is_file():
        return []
    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").split("\n")
             if ln.strip()]
    records = []
    for i, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
            records.append(FrameRecord(int(data["frame"]), int(data["state"]),
                                       _opt_int(data["request"]), _opt_int(data["previous"]),
                                       int(data["seq"]), _opt_float(data["position"]),
                                       tuple(int(v) for v in data["canvas"])
                                       if data.get("canvas") else None))
        except (ValueError, TypeError, KeyError) as exc:
            if i == len(lines):
                log.warning("%s: last line is incomplete (recording interrupted?), skipped", path)
                break
            raise PhospheneError(f"{path}, line {i}: not a frame record: {exc}") from None
    return records


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
