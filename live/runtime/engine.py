"""The live engine: sound in, picture out, played from OSC, MIDI and the keyboard.

Threads (DESIGN.md, "Data flow"); one clock, the audio sample index:

- **audio** (PortAudio callback, in ``AudioIn``/``AudioOut``): copies samples to/from ring
  buffers. With ``--audio-file`` a file is read in real time instead.
- **analysis** (``_analysis_loop``): per hop — read the block; drain control events (OSC, MIDI,
  keys share one queue, each stamped with the sample clock) and carry them out through the
  routes (``Session.route``; presets, clips and MIDI learn by ``LiveActions``); mix clips into
  the output and, if the preset says so, into the analyzer input; advance the ``Session``
  (analyzer -> show); publish the state; hand the latent request to the generator worker.
  Records audio and events with ``--record``.
- **generator** (``GeneratorWorker``): renders the newest request; older ones are dropped.
- **OSC server**, **MIDI input**: validate and queue events (their own threads).
- **display** (``display.run_display``): in its own process by default
  (``display_process.py``: OpenGL waits hold the interpreter lock), served by a link thread
  here (the caller's); with ``display="thread"`` on the caller's thread.

Every one of these threads runs supervised (``phosphene.supervision``): an exception is logged
once, counted in the report and on ``/phosphene/status``, and the thread goes on from the state
its owner kept (the clock, the mailbox, the socket) within a few tens of milliseconds. An
analyzer that keeps failing is replaced by a fresh one at the same clock, and until then the
picture runs on the show's own clock. A show that ends says why (``report["ended"]``): a clean
end (duration, end of file, quit) or a fault (``clean: false``: the CLI exits non-zero).

The pipeline itself (preset -> analyzer -> generator -> show) is the ``Session`` an offline
render and a replay use too; the engine only adds the threads, the devices and the surfaces.
Nothing from the outside may stop the show: bad packets are counted by the OSC server, failed
preset loads and clip plays are logged and counted, generator exceptions keep the last frame.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from phosphene.audio_file import sanitize_audio
from phosphene.errors import PhospheneError
from phosphene.live.audio.clips import ClipPlayer
from phosphene.live.audio.file_source import FileSource
# the streams and MIDI modules import sounddevice and mido inside their open calls, so nothing
# here touches PortAudio or rtmidi unless a device or --midi is asked for
from phosphene.live.audio.streams import AudioIn, AudioOut
from phosphene.live.control.link import LinkClock
from phosphene.live.control.midi import MidiInput
from phosphene.live.control.osc_server import OscServer
from phosphene.live.control.routes import ActionFailed
from phosphene.live.runtime.actions import LiveActions
from phosphene.live.runtime.display import (EngineFeed, PresentedFrame, run_display,
                                            video_outputs)
from phosphene.live.runtime.display_process import DisplayChild, DisplayProcess
from phosphene.live.runtime.live_compile import BackgroundCompile, compile_decision
from phosphene.live.runtime.recording import Recorder
from phosphene.live.runtime.report import (AudioAge, ErrorLog, FrameTimes, OnsetLatency,
                                           RenderLatency, build_report, percentiles_ms,
                                           write_report)
from phosphene.live.runtime.session import (Session, ShowSource, analyzer_settings,
                                            open_generator, source_from_preset)
from phosphene.live.runtime.worker import GeneratorWorker
from phosphene.live.show.events import ControlEvent
from phosphene.supervision import Supervisor
from phosphene.models.bank import Bank
from phosphene.render.outputs import check_outputs

log = logging.getLogger(__name__)

PRESET_POLL_S = 0.5          # how often (audio time) a preset file is checked for a new save
# Output queue beyond the device buffer: above OUTPUT_QUEUE_S blocks without clip audio are
# skipped (the latency a sound server's stall added is won back there; the monitored file stays
# in time with the picture), above OUTPUT_MAX_QUEUE_S the oldest audio is dropped; a block with
# clip audio is never skipped, so a clip plays out whole (AudioOut has the reasons).
OUTPUT_QUEUE_S = 0.1
OUTPUT_MAX_QUEUE_S = 2.5
# An analyzer failing this many hops in a row is replaced by a fresh one (same settings, same
# clock); meanwhile the show advances on its own clock.
ANALYZER_FAILURES_BEFORE_RESET = 3
# A display failing this many times in a row, each at once, ends the show (the window is gone).
DISPLAY_RESTARTS_BEFORE_GIVING_UP = 5
# Device buffer of the output. Clips tolerate a little latency far better than dropouts, and
# a sound server's output stream under CPU load stalls less with some buffer.
OUTPUT_LATENCY_S = 0.15


@dataclass
class EngineOptions:
    """Everything ``phosphene live`` can be told (see ``phosphene.commands.live`` for flags)."""

    preset: str = "default"
    model: str | None = None                  # None: the preset's model
    input: str | None = None                  # audio input device (None: the default)
    output: str | None = None                 # audio output device; "none" = no output
    sample_rate: int | None = None            # None: the input device's default
    bank: Path | None = None
    osc_host: str = "127.0.0.1"
    osc_port: int | None = 9000               # None: no OSC server; 0: any free port
    web: tuple[str, int] | None = None        # the control page's (host, port); None: none
    midi: str | None = None                   # port name or "all"
    midi_api: str | None = None               # rtmidi API (None: platform default)
    link: bool = False                        # join the Ableton Link session (aalink)
    monitor: int | None = None
    fullscreen: bool = False
    fit: str = "letterbox"                    # how the canvas fills the window / screen
    headless: bool = False
    duration_s: float | None = None
    audio_file: Path | None = None
    report: Path | None = None
    record: Path | None = None
    device: str | None = None                 # torch device: cpu, cuda, cuda:1, mps
    size: tuple[int, int] | None = None       # canvas size (None: the preset's output size)
    fps: float | None = None                  # headless display rate (None: the preset's)
    overlay: bool = False
    compile: bool | None = None               # compiled live synthesis; None: the preset's
    #                                           (auto by default: live_compile.py)
    compile_before_start: bool = False        # wait for that compile before the show starts
    #                                           (benchmarks measure the compiled show)
    display: str = "process"                  # "process": its own; "thread": the caller's
    # video outputs of the final picture (None: not sent); the preset's ``ndi`` also opens NDI
    ndi: str | None = None                    # NDI source name
    v4l2: str | None = None                   # v4l2loopback device, /dev/videoN (Linux)
    syphon: str | None = None                 # Syphon server name (macOS)
    spout: str | None = None                  # Spout sender name (Windows)


@dataclass
class _Counters:
    midi_by_address: dict[str, int] = field(default_factory=dict)
    key_events: int = 0
    onsets: int = 0


class Engine:
    """One live run. ``run()`` blocks until the duration is over, the audio file ends, the
    window closes or ``stop()`` is called; it returns the run report (a dict)."""

    def __init__(self, options: EngineOptions, *, generator: Any = None,
                 on_frame: Callable[[PresentedFrame], None] | None = None,
                 capture_pixels: bool = False):
        self.options = options
        self._injected_generator = generator
        self.on_frame = on_frame
        self.capture_pixels = capture_pixels
        self.events: queue.Queue[ControlEvent] = queue.Queue()
        self.errors = ErrorLog()
        self.frame_times = FrameTimes()
        self.latency = OnsetLatency()
        self.render_latency = RenderLatency(1)     # made again with the hop length in _setup
        self.audio_age = AudioAge()
        self.counters = _Counters()
        self.supervisor = Supervisor(on_failure=lambda name, exc: self.errors.add(
            f"thread {name}", f"{type(exc).__name__}: {exc}"))
        self.ended: dict[str, Any] | None = None   # why the show ended (for the report)
        self._analyzer_failures = 0              # in a row
        self.ready = threading.Event()           # set once the first frame is on screen
        self._stop = threading.Event()
        self._analysis_done = threading.Event()
        self.clock = 0                           # samples analysed so far (the one clock)
        self.state = None                        # the newest ShowState (atomic reference)
        # Parts, made by _setup; None until then, or when this run does not use them.
        self.session: Session | None = None
        self.actions: LiveActions | None = None
        self.worker: GeneratorWorker | None = None
        self.osc = None
        self.web = None                            # the control page's server (--web)
        self.midi = None
        self.link = None                           # the Ableton Link client (--link)
        self.clips = None
        self.recorder = None
        self._audio_in = None
        self._audio_out = None
        self._file = None
        self._analysis: threading.Thread | None = None
        self._midi_ports: list[str] = []
        self.sample_rate = 0
        self.audio_source_name = ""
        self.model_source = ""
        self.synthesis_info: dict[str, Any] = {"compiled": False, "reason": "not asked for"}
        self._compile: BackgroundCompile | None = None   # the compiled synthesis being built
        self._started_at = 0.0
        self._start_lock = threading.Lock()
        self._display_child = None                 # spawned early by run(), used once
        self.display_pid: int | None = None        # the display process (tests, status)
        self._wall_s = 0.0
        self._first_arrival: float | None = None  # when the first hop's audio began arriving
        self._last_analysed = 0.0                 # when the newest hop's analysis was done
        self.audio_started_at: float | None = None
        self.display_info: dict[str, Any] = {}   # how the picture was shown (for the report)

    # -- public -----------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end (any thread)."""
        self._end(reason)
        self._stop.set()

    def _end(self, reason: str, clean: bool = True) -> None:
        if self.ended is None:            # the first reason is the one that counts
            self.ended = {"reason": reason, "clean": clean}

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def synthesis_compile(self) -> BackgroundCompile | None:
        """The background compile of the live synthesis (None: the show runs eager)."""
        return self._compile

    @property
    def analysis_done(self) -> bool:
        return self._analysis_done.is_set()

    def wait_stop(self, timeout: float) -> bool:
        return self._stop.wait(timeout)

    def post(self, address: str, *args: Any, origin: str = "key") -> None:
        """Queue a control event as if it came from a control surface (keys use this)."""
        self.events.put(ControlEvent(self.clock, address, tuple(args), origin))

    def wait_audio_running(self, timeout: float = 10.0) -> bool:
        """Wait until the audio streams deliver (some sound servers pause a new stream for a
        second or two); True when they all do."""
        streams = [s for s in (self._audio_in, self._audio_out) if s is not None]
        return all(s.wait_running(timeout) for s in streams)

    @property
    def osc_address(self) -> tuple[str, int] | None:
        return self.osc.address if self.osc is not None else None

    @property
    def show(self):
        return self.session.show if self.session is not None else None

    def run(self) -> dict:
        child = None
        try:
            if self.options.display != "thread":
                # started first: it imports and opens while the model loads
                child = self._display_child = DisplayChild.spawn()
            self._setup()
            self._display()
        except KeyboardInterrupt:
            self._end("interrupted (Ctrl-C)")       # a normal way to end a show
            raise
        finally:
            self._stop.set()
            if child is not None:
                child.close()
            self._teardown()
        return self.report()

    def _display(self) -> None:
        """The display loop, supervised once the show is on screen (before that a window
        that cannot open is a plain error: there is no show to keep going). By default it
        runs in its own process (``display_process.py`` says why)."""
        outcome = []

        def display() -> None:
            if self.options.display == "thread":
                feed = EngineFeed(self, on_frame=self.on_frame,
                                  capture_pixels=self.capture_pixels)
                outcome.append(run_display(feed))
            else:
                child, self._display_child = self._display_child, None
                link = DisplayProcess(self, on_frame=self.on_frame,
                                      capture_pixels=self.capture_pixels)
                outcome.append(link.run(child or DisplayChild.spawn()))
            self.display_info = {"runs_in": self.options.display, **outcome[-1].info}

        finished = self.supervisor.run(
            "display", display, should_stop=self._stop.is_set,
            fatal=lambda exc: not self.ready.is_set(),
            give_up_after=DISPLAY_RESTARTS_BEFORE_GIVING_UP)
        if not finished:
            failure = self.supervisor.snapshot()["failures"][-1]["error"]
            self._end(f"the display failed and could not be restarted: {failure}", clean=False)
        elif self._analysis_done.is_set():
            self._end("the audio ended")
        elif outcome and outcome[-1].reason == "closed":
            self._end("the window was closed")
        else:
            self._end("stopped")

    # -- set-up -----------------------------------------------------------------------------------
    def _setup(self) -> None:
        o = self.options
        source = source_from_preset(o.preset, o.model)
        preset, path = source.preset, source.path
        check_outputs(video_outputs(o, preset))     # one clear line before anything opens
        settings = analyzer_settings(source)
        self._open_audio_source(settings.hop_length)
        self._open_audio_output(settings.hop_length)
        generator = self._open_generator(source)
        if o.record is not None:
            self.recorder = Recorder(
                o.record, self.sample_rate, preset_text=path.read_text(encoding="utf-8"),
                preset_name=preset.name, model_source=self.model_source,
                hop_length=settings.hop_length,
                analyzer_settings=settings.model_dump(mode="json"),
                extra={"input": self.audio_source_name, "preset_dir": str(path.parent),
                       "device": str(generator.device)})
        # the show records each preset switch with its full YAML, so a replay follows it
        self.session = Session(source, self.sample_rate, generator, settings=settings,
                               recorder=self.recorder)
        self.render_latency = RenderLatency(self.session.hop_length)
        self.state = self.session.show.state()

        if o.bank is not None:
            channels = self._audio_out.channels if self._audio_out is not None else 2
            self.clips = ClipPlayer(Bank(o.bank), self.sample_rate, channels, preset.clips.gain)
            self.clips.preload()
        self.actions = LiveActions(self.session.show, preset, path, errors=self.errors,
                                   model_source=self.model_source,
                                   model_fixed=o.model is not None, clips=self.clips)
        if o.osc_port is not None:
            self._start_osc()
        if o.web is not None:
            self._start_web()
        if o.midi:
            self.midi = MidiInput(self.actions.midi_router(preset), o.midi, api=o.midi_api,
                                  clock=lambda: self.clock, events=self.events)
            self.midi.supervisor = self.supervisor
            self.midi.open()
            self.actions.midi = self.midi
            self._midi_ports = [p.name for p in self.midi.ports]
        if o.link:
            self.link = LinkClock(clock=lambda: self.clock, events=self.events,
                                  show_tempo=self._set_tempo_bpm,
                                  start_bpm=self.show.controls.tempo_bpm)
            self.link.supervisor = self.supervisor
            self.link.start()

        self.worker = GeneratorWorker(generator.generate, supervisor=self.supervisor,
                                      device=generator.device).start()
        self.worker.submit(self.state.request)
        self._analysis = self.supervisor.thread("analysis", self._analysis_loop,
                                                should_stop=self._stop.is_set,
                                                on_exit=self._analysis_done.set)

    def start_show(self) -> None:
        """Start the audio and the analysis: called once the display is open (a display
        process takes a second or two to start on a loaded machine; an audio file released
        meanwhile would play out unseen). Later calls (a restarted display) do nothing."""
        with self._start_lock:
            if self._started_at:
                return
            self._start_audio()
            self._started_at = time.monotonic()
            self._analysis.start()

    def _start_osc(self) -> None:
        o = self.options
        try:
            self.osc = OscServer(o.osc_host, o.osc_port, clock=lambda: self.clock,
                                 context=lambda: self.actions.context, status=self._status,
                                 events=self.events)
            self.osc.supervisor = self.supervisor
            self.osc.start()
        except OSError as exc:
            raise PhospheneError(f"cannot listen for OSC on {o.osc_host}:{o.osc_port}: "
                                 f"{exc.strerror or exc}") from None

    def _start_web(self) -> None:
        # start-up time: starlette and uvicorn load only when the page is asked for
        from phosphene.live.control.web_server import serve_engine

        host, port = self.options.web
        try:
            self.web = serve_engine(self, host, port)
        except OSError as exc:
            raise PhospheneError(f"cannot serve the control page on {host}:{port}: "
                                 f"{exc.strerror or exc}") from None

    def _open_audio_source(self, hop_length: int) -> None:
        o = self.options
        if o.audio_file is not None:
            self._file = FileSource(o.audio_file)
            self.sample_rate = self._file.sample_rate
            self.audio_source_name = f"file:{self._file.path}"
            return
        self._audio_in = AudioIn(o.input, samplerate=o.sample_rate, blocksize=hop_length)
        self.sample_rate = self._audio_in.samplerate
        self.audio_source_name = f"input:{self._audio_in.device_name}"

    def _open_audio_output(self, hop_length: int) -> None:
        """An output for clips (and for hearing an ``--audio-file``). Opened when asked for,
        or when there is something to play; a missing device is fatal only when asked for."""
        o = self.options
        if o.output == "none":
            return
        wanted = o.output is not None
        if not (wanted or o.bank is not None or o.audio_file is not None):
            return
        try:
            self._audio_out = AudioOut(o.output, samplerate=self.sample_rate,
                                       blocksize=hop_length, latency=OUTPUT_LATENCY_S,
                                       queue_s=OUTPUT_QUEUE_S, max_queue_s=OUTPUT_MAX_QUEUE_S)
        except PhospheneError as exc:
            if wanted:
                raise
            log.warning("no audio output (%s): clips feed the analyzer only", exc)

    def _start_audio(self) -> None:
        for stream in (self._audio_in, self._audio_out):
            if stream is None:
                continue
            stream.supervisor = self.supervisor
            try:
                stream.start()
            except PhospheneError:
                raise
            except Exception as exc:  # noqa: BLE001 - PortAudio's errors, as one line
                raise PhospheneError(f"cannot start audio {stream.kind} {stream.device_name!r}: "
                                     f"{exc}") from None

    def _open_generator(self, source: ShowSource):
        o = self.options
        generator, self.model_source = open_live_generator(
            source.model_source, o.device, generator=self._injected_generator)
        compile_it, why = compile_decision(o.compile, source.preset.generator.compile,
                                           generator.device.type)
        if compile_it:        # eager frames until the compiled network is built and checked
            self._compile = BackgroundCompile(generator, why).start()
            if o.compile_before_start:
                log.info("compiling the live synthesis before the show starts ...")
                self._compile.wait()
        else:
            self.synthesis_info = {"compiled": False, "reason": why}
        log.info("live synthesis: %s", why)
        return generator

    # -- the analysis thread --------------------------------------------------------------------
    def _blocks(self):
        hop = self.session.hop_length
        # a file is released in real time from now: its sample s is "heard" at this + s / sr
        self.audio_started_at = time.monotonic()
        if self._file is not None:
            # a restarted analysis thread goes on where the clock is, not from the top
            yield from self._file.blocks(hop, realtime=True, start_sample=self.clock)
            if not self._stop.is_set():
                self._end("the audio file ended")
            return
        audio_in = self._audio_in
        out = np.empty(hop, dtype=np.float32)
        while not self._stop.is_set():
            if audio_in.read(out, timeout=0.5):
                yield out

    def _analysis_loop(self) -> None:
        session, actions = self.session, self.actions
        hop = session.hop_length
        sr = self.sample_rate
        limit = None if self.options.duration_s is None else int(self.options.duration_s * sr)
        next_poll = int(PRESET_POLL_S * sr)
        analysis_in = np.empty(hop, dtype=np.float32)
        for block in self._blocks():
            if self._stop.is_set():
                break
            # when this audio reached us (the callback's stamp), not when it was read: audio
            # that waited in the ring is as late as it is
            arrived = self._file.due_at if self._file is not None else self._audio_in.delivered_at
            block_start = self.clock
            actions.block_start = block_start
            events = self._drain_events()
            if events:      # a quantized action is held with the lookaheads of now
                session.lookahead_s = self._quantize_lookahead_s()
                session.sound_lookahead_s = self._audio_out.latency_s() \
                    if self._audio_out is not None else 0.0
            session.route(events, actions, self._event_failed)
            # what the analyzer and a recording hear: finite, within full scale (a broken
            # driver or file must not reach either)
            sanitize_audio(block, out=analysis_in)
            clip = self.clips.mix(block_start, hop) if self.clips is not None else None
            if self._audio_out is not None:
                self._play_out(block if self._file is not None else None, clip)
            if clip is not None and session.show.preset.clips.feed_analyzer:
                analysis_in += clip.mean(axis=1)
                sanitize_audio(analysis_in, out=analysis_in)
            if self.recorder is not None:
                self.recorder.write_audio(analysis_in)
            frame, state = self._advance(analysis_in)
            self.clock = frame.sample_index
            self.state = state
            self.worker.submit(state.request)
            self.render_latency.hop(frame.sample_index, arrived)
            done = time.monotonic()
            self.audio_age.add(done - arrived)
            if self._first_arrival is None:
                self._first_arrival = arrived - hop / sr
            self._last_analysed = done
            if frame.onset:
                self.counters.onsets += 1
                self.latency.onset(frame.sample_index, arrived)
            if frame.sample_index >= next_poll:
                next_poll = frame.sample_index + int(PRESET_POLL_S * sr)
                actions.poll_preset_file()
            if limit is not None and frame.sample_index >= limit:
                self._end("the --duration was reached")
                break

    def _advance(self, block: np.ndarray):
        """One hop through the session; an analyzer that fails does not stop the picture."""
        try:
            result = self.session.advance(block)
        except Exception as exc:  # noqa: BLE001 - the show goes on without the analyzer
            self._analyzer_failures += 1
            if self.errors.add("analyzer", f"{type(exc).__name__}: {exc}"):
                log.exception("analyzer failed; the picture goes on on its own clock")
            if self._analyzer_failures >= ANALYZER_FAILURES_BEFORE_RESET:
                log.warning("analyzer failed %d hops in a row: starting a fresh one",
                            self._analyzer_failures)
                self.session.reset_analyzer()
                self._analyzer_failures = 0
            return self.session.advance_without_audio()
        self._analyzer_failures = 0
        return result

    def _play_out(self, file_block: np.ndarray | None, clip: np.ndarray | None) -> None:
        out = self._audio_out
        if file_block is None and clip is None:
            return                        # the output callback pads with silence
        if clip is None:
            mixed = file_block
        elif file_block is None:
            mixed = clip
        else:
            mixed = clip + file_block[:, None]
        out.play(mixed, droppable=clip is None)   # made finite and limited there, the one place

    def _drain_events(self) -> list[ControlEvent]:
        """Everything queued since the last hop (counted by where it came from)."""
        events: list[ControlEvent] = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return events
            if event.origin == "midi":
                by = self.counters.midi_by_address
                by[event.address] = by.get(event.address, 0) + 1
            elif event.origin == "key":
                self.counters.key_events += 1
            events.append(event)

    def _event_failed(self, event: ControlEvent, exc: Exception) -> None:
        """An event that failed after validation (an action refused, a handler that raised):
        logged once per address and reason, counted, and answered to an OSC sender."""
        refused = isinstance(exc, ActionFailed)
        reason = str(exc) if refused else f"{type(exc).__name__}: {exc}"
        if self.errors.add(event.address, reason):
            (log.warning if refused else log.error)("control event %s failed: %s",
                                                    event.address, reason)
        surface = self.web if event.origin == "web" else self.osc   # whoever sent it
        if event.reply_to is not None and surface is not None:
            surface.reply_error(event.reply_to, event.address, reason)

    def _quantize_lookahead_s(self) -> float:
        """How early a quantized action fires (``show/quantize.py``): the preset's fixed
        lookahead, or the measured time from a hop's audio to its picture on screen."""
        fixed = self.show.preset.quantize_lookahead_ms
        if fixed != "auto":
            return float(fixed) / 1000.0
        measured = self.render_latency.recent_s()
        return 0.0 if measured is None else measured

    def _set_tempo_bpm(self) -> float:
        """The tempo set on the show (tap, OSC, MIDI, Link); 0 when it follows the analyzer."""
        params = self.show.controls.params
        return params.target("tempo_bpm") if "tempo_bpm" in params else 0.0

    # -- status and report ------------------------------------------------------------------------
    def _status(self) -> dict:
        fps, frame_ms = self.frame_times.recent(1.0)
        worker = self.worker
        times = worker.render_times_s[-10:] if worker is not None else []
        gen_fps = len(times) / sum(times) if times and sum(times) > 0 else 0.0
        show = self.show
        return {"fps": fps, "frame_ms": frame_ms, "generator_fps": gen_fps,
                "tempo_bpm": show.controls.tempo_bpm if show is not None else 0.0,
                "preset": show.preset.name if show is not None else "",
                "thread_restarts": self.supervisor.total_restarts,
                "errors": len(self.errors),
                "input_overflows": self._audio_in.stats()["overflows"]
                if self._audio_in is not None else 0,
                "audio_age_ms": 1000.0 * self.audio_age.newest_s}

    def _teardown(self) -> None:
        self._wall_s = time.monotonic() - self._started_at if self._started_at else 0.0
        if self._analysis is not None and self._analysis.is_alive():
            self._analysis.join(timeout=5)
        if self._compile is not None:
            self._compile.cancel()       # no compiler left running after the show
        parts = (("generator", self.worker, "stop"), ("osc", self.osc, "stop"),
                 ("web", self.web, "stop"),
                 ("midi", self.midi, "close"), ("link", self.link, "stop"),
                 ("audio input", self._audio_in, "stop"),
                 ("audio output", self._audio_out, "stop"), ("recording", self.recorder, "close"))
        for name, part, close in parts:
            if part is None:
                continue                 # that part was never started
            try:
                getattr(part, close)()
            except Exception as exc:  # noqa: BLE001 - close the rest regardless
                log.warning("closing %s failed: %s", name, exc)
        if self.options.report is not None and self.worker is not None:
            write_report(self.options.report, self.report())
            log.info("run report written to %s", self.options.report)

    def _analysed_per_wall_s(self) -> float:
        """Seconds of audio analysed per second of wall time, from the first audio's
        arrival to the newest analysis (1.0: nothing lost, nothing left waiting)."""
        if self._first_arrival is None:
            return 0.0
        span = self._last_analysed - self._first_arrival
        return self.clock / self.sample_rate / span if span > 0 else 0.0

    def report(self) -> dict:
        if self.worker is None:          # set-up did not finish: nothing ran
            return {}
        state = self.state
        worker = self.worker
        audio: dict[str, Any] = {"source": self.audio_source_name,
                                 "sample_rate": self.sample_rate,
                                 "hop_length": self.session.hop_length,
                                 "seconds_analysed": self.clock / self.sample_rate,
                                 # 1.0: the analysis kept up with the wall clock
                                 "analysed_per_wall_s": self._analysed_per_wall_s(),
                                 "age": self.audio_age.summary()}
        if self._audio_in is not None:
            audio.update(self._audio_in.stats())
            audio["silent_blocks"] = self._audio_in.silent_blocks
        else:
            audio["overflows"] = 0
        if self._audio_out is not None:
            audio["output"] = self._audio_out.stats()
        osc = self.osc.snapshot() if self.osc is not None else {"accepted": {}, "rejected": {}}
        midi = {"accepted": dict(self.counters.midi_by_address),
                "rejected": self.midi.router.ignored if self.midi is not None else 0,
                "ports": list(self._midi_ports)}
        clips = {"played": dict(self.clips.played), "errors": self.clips.errors} \
            if self.clips is not None else None
        intervals = self.frame_times.intervals()
        analyzer = self.session.analyzer
        return build_report(
            preset=self.show.preset.name, model=self.model_source,
            device=str(self.session.generator.device), wall_s=self._wall_s,
            frames={"presented": self.frame_times.count, "generated": worker.generated,
                    "generator_errors": worker.errors, "requests_superseded": worker.superseded,
                    "fps": self.frame_times.fps(), "frame_time_ms": percentiles_ms(intervals),
                    "generator_ms": percentiles_ms(worker.render_times_s),
                    "synthesis": dict(self._compile.info if self._compile is not None
                                      else self.synthesis_info)},
            audio=audio,
            onsets={"detected": self.counters.onsets, **self.latency.summary(),
                    "analyzer_delay_ms": 1000.0 * analyzer.onset_delay_samples
                    / self.sample_rate},
            osc=osc, midi=midi, keys={"events": self.counters.key_events}, clips=clips,
            web=self.web.snapshot() if self.web is not None else None,
            link=self.link.snapshot() if self.link is not None else None,
            display=dict(self.display_info),
            preset_switches=self.actions.switches,
            quantize={**self.session.quantized, "waiting": self.session.quantizer.waiting,
                      "lookahead_ms": 1000.0 * self.session.lookahead_s,
                      "render_latency_ms": None if self.render_latency.recent_s() is None
                      else 1000.0 * self.render_latency.recent_s(),
                      "last": list(self.session.releases)},
            threads=self.supervisor.snapshot(),
            ended=dict(self.ended) if self.ended else {"reason": "running", "clean": True},
            errors=self.errors.entries(),
            final={"preset": state.preset_name, "keyframe": state.request.keyframe,
                   "parameters": dict(state.values),
                   "effects_enabled": dict(state.effects_enabled),
                   "blackout": state.blackout, "frozen": state.frozen})


def open_live_generator(model_source: str, device: str | None = None, *,
                        generator: Any = None):
    """The show's frame generator and model name, as ``phosphene live`` opens it: a performer
    with a GPU expects it used without asking (``auto`` = cuda, mps, cpu), and on the CPU one
    core is left for the display. ``live --prepare`` opens it the same way: the thread count
    is part of a compiled package's cache key."""
    frame_generator, name = open_generator(model_source, device or "auto", generator=generator)
    if frame_generator.device.type == "cpu":
        leave_a_core_for_the_display()
    return frame_generator, name


def leave_a_core_for_the_display() -> None:
    """On the CPU, torch would take every core and starve the analysis thread and the display
    process (an onset's flash would wait for a GAN frame): the generator gets all cores but
    one. Measured on the 2-core VM (docs/benchmarks.md, real time under load): with 1 torch
    thread the analysis never lags and the generator keeps 78-85 % of its standalone rate.
    A thread count the user chose (``OMP_NUM_THREADS``, or torch set below the cores) stays."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return
    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)
