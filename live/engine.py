"""The live engine: sound in, picture out, played from OSC, MIDI and the keyboard.

Threads (DESIGN.md, "Data flow"); one clock, the audio sample index:

- **audio** (PortAudio callback, in ``AudioIn``/``AudioOut``): copies samples to/from ring
  buffers. With ``--audio-file`` a file is read in real time instead.
- **analysis** (``_analysis_loop``): per hop — read the block; drain control events (OSC, MIDI,
  keys share one queue, each stamped with the sample clock); handle the engine's own events
  (presets, clips, MIDI learn); mix clips into the output and, if the preset says so, into the
  analyzer input; analyze; advance the ``Show``; publish its state; hand the latent request to
  the generator worker. Records audio and events with ``--record``.
- **generator** (``GeneratorWorker``): renders the newest request; older ones are dropped.
- **OSC server**, **MIDI input**: validate and queue events (their own threads).
- **display** (the caller's thread: main for a window): at the display rate, the current show
  state and the newest generator frames through the effect chain, to a window (vsync) or an
  EGL surface (``--headless``, paced to the preset's fps). With ``--record``, one short line
  per presented frame says which state and generator frames it drew (``frames.jsonl``).

Nothing from the outside may stop the show: bad packets are counted by the OSC server, failed
preset loads and clip plays are logged and counted, generator exceptions keep the last frame.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.controls import PREFIX, ControlEvent
from phosphene.live.osc_namespace import NamespaceContext
from phosphene.live.report import ErrorLog, FrameTimes, OnsetLatency, build_report, percentiles_ms

log = logging.getLogger(__name__)

PRESET_POLL_S = 0.5          # how often (audio time) a preset file is checked for a new save
# Most clip audio queued for the output. A sound server may stall an output stream for a second
# or two after it opens; writing on regardless would fill the ring and leave every clip that
# late for the rest of the show. Above this, blocks are skipped (counted) until it catches up.
OUTPUT_QUEUE_S = 0.1
# Device buffer of the output. Clips tolerate a little latency far better than dropouts, and
# a sound server's output stream under CPU load stalls less with some buffer.
OUTPUT_LATENCY_S = 0.05


@dataclass
class EngineOptions:
    """Everything ``phosphene live`` can be told (see ``live_cli`` for the flags)."""

    preset: str = "default"
    model: str | None = None                  # None: the preset's model
    input: str | None = None                  # audio input device (None: the default)
    output: str | None = None                 # audio output device; "none" = no output
    sample_rate: int | None = None            # None: the input device's default
    bank: Path | None = None
    osc_host: str = "127.0.0.1"
    osc_port: int | None = 9000               # None: no OSC server; 0: any free port
    midi: str | None = None                   # port name or "all"
    midi_api: str | None = None               # rtmidi API (None: platform default)
    monitor: int | None = None
    fullscreen: bool = False
    headless: bool = False
    duration_s: float | None = None
    audio_file: Path | None = None
    report: Path | None = None
    record: Path | None = None
    device: str | None = None                 # torch device: cpu, cuda, cuda:1, mps
    size: tuple[int, int] | None = None       # canvas size (None: the preset's output size)
    fps: float | None = None                  # headless display rate (None: the preset's)
    overlay: bool = False


@dataclass(frozen=True)
class PresentedFrame:
    """What the ``on_frame`` hook receives after each display frame (tests, benchmarks)."""

    index: int
    presented_at: float                       # time.monotonic()
    state: Any                                # the ShowState drawn
    generator_sample: int | None              # request sample index of the generator frame
    pixels: np.ndarray | None                 # (H, W, 3) uint8 when the hook asked for pixels


@dataclass
class _Counters:
    midi_by_address: dict[str, int] = field(default_factory=dict)
    key_events: int = 0
    preset_switches: int = 0
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
        self.counters = _Counters()
        self.ready = threading.Event()           # set once the first frame is on screen
        self._stop = threading.Event()
        self._analysis_done = threading.Event()
        self.clock = 0                           # samples analysed so far (the one clock)
        self.state = None                        # the newest ShowState (atomic reference)
        self.osc = None
        self.midi = None
        self.clips = None
        self.recorder = None
        self._audio_in = None
        self._audio_out = None
        self._file = None
        self._started_at = 0.0
        self._wall_s = 0.0
        self._setup_done = False
        self._midi_ports: list[str] = []
        self.audio_started_at: float | None = None
        self.output_skipped = 0                  # output blocks skipped to bound latency
        self.display_info: dict[str, Any] = {}   # how the picture was shown (for the report)

    # -- public -----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to end (any thread)."""
        self._stop.set()

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

    def run(self) -> dict:
        try:
            self._setup()
            self._display_loop()
        finally:
            self._stop.set()
            self._teardown()
        return self.report()

    # -- set-up -----------------------------------------------------------------------------------
    def _setup(self) -> None:
        from phosphene.live.analyzer import Analyzer
        from phosphene.live.analyzer_settings import AnalyzerSettings
        from phosphene.live.preset_catalog import PresetCatalog
        from phosphene.live.presets import load_preset

        o = self.options
        preset, path = load_preset(o.preset)
        self.preset, self.preset_path = preset, path
        self.catalog = PresetCatalog(path.parent)
        self.watcher = _new_watcher(path, preset)
        try:
            settings = AnalyzerSettings(**preset.analyzer)
        except ValueError as exc:
            raise PhospheneError(f"{path}: analyzer: {exc}") from None

        self._open_audio_source(settings.hop_length)
        self.analyzer = Analyzer(self.sample_rate, settings)
        self._open_audio_output()
        self._load_generator(preset)

        from phosphene.live.show import Show

        self.show = Show(preset, self.facts, self.sample_rate, base_dir=path.parent)
        self.state = self.show.state()
        self._context = self._context_for(preset)
        self._effect_refs = _effect_refs(preset)

        if o.bank is not None:
            from phosphene.live.clips import ClipPlayer
            from phosphene.models.bank import Bank

            channels = self._audio_out.channels if self._audio_out is not None else 2
            self.clips = ClipPlayer(Bank(o.bank), self.sample_rate, channels, preset.clips.gain)
            self.clips.preload()

        if o.record is not None:
            from phosphene.live.recording import Recorder

            self.recorder = Recorder(
                o.record, self.sample_rate, preset_text=path.read_text(encoding="utf-8"),
                preset_name=preset.name, model_source=self.model_source,
                hop_length=self.analyzer.hop_length,
                analyzer_settings=settings.model_dump(mode="json"),
                extra={"input": self.audio_source_name, "preset_dir": str(path.parent),
                       "device": str(self.generator.device)})
            # The show records each preset switch with its full YAML, so a replay follows it.
            self.show.recorder = self.recorder

        if o.osc_port is not None:
            from phosphene.live.osc import OscServer

            try:
                self.osc = OscServer(o.osc_host, o.osc_port, clock=lambda: self.clock,
                                     context=lambda: self._context, status=self._status,
                                     events=self.events).start()
            except OSError as exc:
                raise PhospheneError(f"cannot listen for OSC on {o.osc_host}:{o.osc_port}: "
                                     f"{exc.strerror or exc}") from None
        if o.midi:
            from phosphene.live.midi import MidiInput, MidiRouter

            router = MidiRouter.from_preset(preset, lambda: self._context, self._on_learn)
            self.midi = MidiInput(router, o.midi, api=o.midi_api, clock=lambda: self.clock,
                                  events=self.events).open()
            self._midi_ports = [p.name for p in self.midi.ports]

        self.worker = self._start_worker()
        self.worker.submit(self.state.request)
        self._analysis = threading.Thread(target=self._analysis_guard, name="phosphene-analysis",
                                          daemon=True)
        self._start_audio()
        self._setup_done = True
        self._started_at = time.monotonic()
        self._analysis.start()

    def _open_audio_source(self, hop_length: int) -> None:
        o = self.options
        if o.audio_file is not None:
            from phosphene.live.file_source import FileSource

            self._file = FileSource(o.audio_file)
            self.sample_rate = self._file.sample_rate
            self.audio_source_name = f"file:{self._file.path}"
            return
        from phosphene.live.audio_io import AudioIn

        self._audio_in = AudioIn(o.input, samplerate=o.sample_rate, blocksize=hop_length)
        self.sample_rate = self._audio_in.samplerate
        self.audio_source_name = f"input:{self._audio_in.device_name}"

    def _open_audio_output(self) -> None:
        """An output for clips (and for hearing an ``--audio-file``). Opened when asked for,
        or when there is something to play; a missing device is fatal only when asked for."""
        o = self.options
        if o.output == "none":
            return
        wanted = o.output is not None
        if not (wanted or o.bank is not None or o.audio_file is not None):
            return
        from phosphene.live.audio_io import AudioOut

        try:
            self._audio_out = AudioOut(o.output, samplerate=self.sample_rate,
                                       blocksize=self.analyzer.hop_length, latency=OUTPUT_LATENCY_S)
        except PhospheneError as exc:
            if wanted:
                raise
            log.warning("no audio output (%s): clips feed the analyzer only", exc)

    def _start_audio(self) -> None:
        for stream in (self._audio_in, self._audio_out):
            if stream is None:
                continue
            try:
                stream.start()
            except PhospheneError:
                raise
            except Exception as exc:  # noqa: BLE001 - PortAudio's errors, as one line
                raise PhospheneError(f"cannot start audio {stream.kind} {stream.device_name!r}: "
                                     f"{exc}") from None

    def _load_generator(self, preset) -> None:
        from phosphene.live.generation import FrameGenerator
        from phosphene.live.show import GeneratorFacts

        from phosphene.models.cli import pick_device

        o = self.options
        # A performer with a GPU expects it to be used without asking: auto = cuda, mps, cpu.
        device = pick_device(o.device or "auto")
        if device.type == "cpu":
            _leave_a_core_for_the_display()
        if self._injected_generator is not None:
            G = self._injected_generator
            self.model_source = getattr(G, "source", "<in-process generator>")
        else:
            from phosphene.models import load_generator

            self.model_source = o.model or preset.model
            log.info("loading generator %s on %s", self.model_source, device)
            G = load_generator(self.model_source, device=device)
        self.generator = FrameGenerator(G, device)
        self.facts = GeneratorFacts.from_generator(G, self.generator.device)

    def _start_worker(self):
        from phosphene.live.generator_worker import GeneratorWorker

        return GeneratorWorker(self.generator.generate).start()

    def _context_for(self, preset) -> NamespaceContext:
        return NamespaceContext(parameters=preset.parameter_specs(),
                                effects=frozenset(preset.effect_names()))

    # -- the analysis thread --------------------------------------------------------------------
    def _analysis_guard(self) -> None:
        try:
            self._analysis_loop()
        except Exception as exc:  # noqa: BLE001 - reported; the display loop ends the run
            log.exception("analysis loop failed")
            self.errors.add("analysis", f"{type(exc).__name__}: {exc}")
        finally:
            self._analysis_done.set()

    def _blocks(self):
        hop = self.analyzer.hop_length
        # a file is released in real time from now: its sample s is "heard" at this + s / sr
        self.audio_started_at = time.monotonic()
        if self._file is not None:
            yield from self._file.blocks(hop, realtime=True)
            return
        audio_in = self._audio_in
        out = np.empty(hop, dtype=np.float32)
        while not self._stop.is_set():
            if audio_in.read(out, timeout=0.5):
                yield out

    def _analysis_loop(self) -> None:
        hop = self.analyzer.hop_length
        sr = self.sample_rate
        limit = None if self.options.duration_s is None else int(self.options.duration_s * sr)
        next_poll = int(PRESET_POLL_S * sr)
        analysis_in = np.empty(hop, dtype=np.float32)
        for block in self._blocks():
            if self._stop.is_set():
                break
            arrived = time.monotonic()
            block_start = self.clock
            show_events = self._drain_events(block_start)
            np.copyto(analysis_in, block)
            clip = self.clips.mix(block_start, hop) if self.clips is not None else None
            if self._audio_out is not None:
                self._play_out(block if self._file is not None else None, clip)
            if clip is not None and self.show.preset.clips.feed_analyzer:
                analysis_in += clip.mean(axis=1)
            if self.recorder is not None:
                self.recorder.write_audio(analysis_in)
            frame = self.analyzer.process(analysis_in)
            state = self.show.advance(frame, show_events)
            self.clock = frame.sample_index
            self.state = state
            self.worker.submit(state.request)
            if frame.onset:
                self.counters.onsets += 1
                self.latency.onset(frame.sample_index, arrived)
            if frame.sample_index >= next_poll:
                next_poll = frame.sample_index + int(PRESET_POLL_S * sr)
                self._poll_preset_file()
            if limit is not None and frame.sample_index >= limit:
                break

    def _play_out(self, file_block: np.ndarray | None, clip: np.ndarray | None) -> None:
        out = self._audio_out
        if file_block is None and clip is None:
            return                        # the output callback pads with silence
        if out.queued_frames() > OUTPUT_QUEUE_S * self.sample_rate:
            self.output_skipped += 1
            return
        if clip is None:
            mixed = file_block
        elif file_block is None:
            mixed = clip
        else:
            mixed = clip + file_block[:, None]
        out.write(np.clip(mixed, -1.0, 1.0))

    def _drain_events(self, block_start: int) -> list[ControlEvent]:
        """Everything queued since the last hop: the engine's own events handled here, the
        rest returned for the show (applied before this hop, by the show's event rule)."""
        for_show: list[ControlEvent] = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return for_show
            if self.recorder is not None:
                # Stamp with the hop the event is applied at: an event that arrives while a
                # hop is processed carries the previous hop's clock, and would replay early.
                self.recorder.write_event(event, applied_at=block_start)
            if event.origin == "midi":
                by = self.counters.midi_by_address
                by[event.address] = by.get(event.address, 0) + 1
            elif event.origin == "key":
                self.counters.key_events += 1
            try:
                if not self._engine_event(event, block_start):
                    for_show.append(event)
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the show
                log.exception("control event %s failed", event.address)
                self.errors.add(event.address, f"{type(exc).__name__}: {exc}")

    def _engine_event(self, event: ControlEvent, block_start: int) -> bool:
        """Preset, clip and MIDI-learn events; True when handled here."""
        if not event.address.startswith(PREFIX):
            return False
        what = event.address[len(PREFIX):]
        args = event.args
        if what == "preset/load":
            self._switch_to(str(args[0]))
        elif what in ("preset/next", "preset/prev"):
            step = 1 if what.endswith("next") else -1
            self._switch_to(self.catalog.neighbour(self.show.preset.name, step))
        elif what == "clip/play":
            if self.clips is None:
                self._refuse(event, "no clip bank (start with --bank DIR)")
            elif not self.clips.play(str(args[0]), float(args[1]) if len(args) > 1 else 1.0,
                                     at_sample=max(event.sample_index, block_start)):
                self.errors.add(event.address, f"clip {args[0]!r} could not be played")
        elif what == "clip/stop":
            if self.clips is not None:
                self.clips.stop(str(args[0]))
        elif what == "clip/stopall":
            if self.clips is not None:
                self.clips.stop_all()
        elif what == "midi/learn":
            if self.midi is None:
                self._refuse(event, "no MIDI input (start with --midi PORT|all)")
            else:
                self.midi.router.arm_learn(str(args[0]))
        elif what == "midi/cancel":
            if self.midi is not None:
                self.midi.router.cancel_learn()
        elif what == "status":
            pass                          # answered by the OSC server itself
        else:
            return False
        return True

    def _refuse(self, event: ControlEvent, reason: str) -> None:
        log.warning("%s ignored: %s", event.address, reason)
        self.errors.add(event.address, reason)

    def _switch_to(self, name: str) -> None:
        try:
            preset, path = self.catalog.load(name)
            self._install_preset(preset, path)
        except PhospheneError as exc:
            log.error("preset %s not loaded, the running one stays: %s", name, exc)
            self.errors.add("/phosphene/preset/load", str(exc))

    def _install_preset(self, preset, path: Path, crossfade_s: float | None = None) -> None:
        self.show.switch_preset(preset, crossfade_s, base_dir=path.parent)
        if preset.model != self.preset.model and self.options.model is None:
            log.warning("preset %s names model %s; the show keeps %s", preset.name,
                        preset.model, self.model_source)
        self.preset, self.preset_path = preset, path
        self.watcher = _new_watcher(path, preset)
        self._effect_refs = {**self._effect_refs, **_effect_refs(preset)}
        self._context = self._context_for(preset)     # replaced whole: read by other threads
        if self.midi is not None:
            from phosphene.live.midi import MidiRouter

            self.midi.router = MidiRouter.from_preset(preset, lambda: self._context,
                                                      self._on_learn)
        if self.clips is not None:
            self.clips.gain = preset.clips.gain
        self.counters.preset_switches += 1
        log.info("preset %s (crossfade %.1f s)", preset.name,
                 preset.crossfade_ms / 1000.0 if crossfade_s is None else crossfade_s)

    def _poll_preset_file(self) -> None:
        try:
            preset = self.watcher.poll()
        except Exception as exc:  # noqa: BLE001
            self.errors.add("preset reload", str(exc))
            return
        if self.watcher.error:
            self.errors.add("preset reload", self.watcher.error)
            self.watcher.error = None
        if preset is not None:
            try:
                self._install_preset(preset, self.preset_path, crossfade_s=0.25)
            except PhospheneError as exc:
                log.error("reloaded preset not applied: %s", exc)
                self.errors.add("preset reload", str(exc))

    def _on_learn(self, binding) -> None:
        """A MIDI-learned CC: saved into the preset file (never into a shipped one)."""
        from phosphene.live.midi import save_cc_binding
        from phosphene.live.presets import shipped_presets

        path = self.preset_path
        shipped_dir = Path(str(__import__("importlib").resources.files("phosphene.presets")))
        if path.parent.resolve() == shipped_dir.resolve() and path.stem in shipped_presets():
            log.warning("MIDI learn: CC %d -> %s works for this run; not saved into the shipped "
                        "preset %s (copy it to a folder of your own to keep bindings)",
                        binding.control, binding.target, path.name)
            return
        save_cc_binding(path, binding)
        log.info("MIDI learn: CC %d -> %s saved into %s", binding.control, binding.target, path)

    # -- the display loop -------------------------------------------------------------------------
    def _display_loop(self) -> None:
        from phosphene.live.display import Presenter

        o = self.options
        size = o.size or (self.preset.output.width, self.preset.output.height)
        window = None
        if o.headless:
            from phosphene.render.context import create_headless_context

            ctx = create_headless_context()
        else:
            from phosphene.render.window import Window

            window = Window(size, title=f"phosphene — {self.preset.name}", monitor=o.monitor,
                            fullscreen=o.fullscreen, overlay=o.overlay)
            ctx = window.ctx
            self._bind_keys(window)
        presenter = Presenter(ctx, size, self._effect_refs, self.sample_rate)
        period = 1.0 / (o.fps or self.preset.output.fps)
        pace_s = self._pace_period(window, period)
        self.display_info = {"mode": "headless" if window is None else "window",
                             "canvas": list(size), "rate_cap_hz": 1.0 / pace_s}
        recorder = self.recorder
        if recorder is not None:
            recorder.start_frames(size[0], size[1], 1.0 / period)
        index = 0
        try:
            # first picture: wait (bounded) for the generator so the show never opens black
            self.worker.wait_for_frame(timeout=60.0)
            next_due = time.monotonic()
            while not self._stop.is_set():
                if window is not None and not window.poll():
                    break
                if self._analysis_done.is_set():
                    break
                state = self.state
                presenter.update_refs(self._effect_refs)
                generated = self.worker.latest()
                now = time.monotonic()
                try:
                    canvas = presenter.draw(state, generated, now)
                except PhospheneError as exc:
                    if self.errors.add("display", str(exc)):    # log a repeat once
                        log.error("frame not drawn: %s", exc)
                    time.sleep(period)
                    continue
                if window is not None:
                    window.present(canvas)
                else:
                    ctx.finish()          # the frame is really drawn, as a swap would wait
                presented = time.monotonic()
                if recorder is not None:     # what a replay needs to draw this frame again
                    recorder.write_frame(index, state.sample_index, presenter.generator_sample,
                                         presenter.previous_sample, presenter.shown_seq,
                                         presenter.crossfade_position)
                self.frame_times.add(presented)
                self.latency.presented(presented, state.sample_index, presenter.generator_sample)
                if self.on_frame is not None:
                    pixels = presenter.chain.read().copy() if self.capture_pixels else None
                    self.on_frame(PresentedFrame(index, presented, state,
                                                 presenter.generator_sample, pixels))
                index += 1
                self.ready.set()
                # pace to the display rate (headless; a window whose swap does not wait)
                next_due = max(next_due + pace_s, presented - pace_s)
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            presenter.release()
            if window is not None:
                self.display_info.update(window=list(window.framebuffer_size),
                                         fullscreen=window.fullscreen,
                                         overlay=window.overlay_visible,
                                         refresh_hz=window.refresh_hz)
                window.close()
            else:
                ctx.release()

    @staticmethod
    def _pace_period(window, period: float) -> float:
        """Least seconds between display frames. Headless: ``period`` (the preset's rate or
        --fps). A window is paced by vsync; its cap, a little above the monitor's refresh, only
        acts where the swap does not wait (Xvfb, a VM, vsync off in the driver), so the loop
        never spins flat out and starves the analysis and generator threads."""
        if window is not None and window.refresh_hz:
            return 1.0 / (1.1 * window.refresh_hz)
        return period

    def _bind_keys(self, window) -> None:
        """Performer keys (f, Esc/q, o are the window's own)."""
        glfw = window.glfw
        keys = {glfw.KEY_SPACE: ("/phosphene/keyframe/next",),
                glfw.KEY_BACKSPACE: ("/phosphene/keyframe/prev",),
                glfw.KEY_C: ("/phosphene/keyframe/capture",),
                glfw.KEY_T: ("/phosphene/tempo/tap",),
                glfw.KEY_RIGHT: ("/phosphene/preset/next",),
                glfw.KEY_LEFT: ("/phosphene/preset/prev",)}
        for key, (address, *args) in keys.items():
            window.on_key(key, lambda a=address, x=tuple(args): self.post(a, *x, origin="key"))

    # -- status and report ------------------------------------------------------------------------
    def _status(self) -> dict:
        fps, frame_ms = self.frame_times.recent(1.0)
        times = self.worker.render_times_s[-10:] if self._setup_done else []
        gen_fps = len(times) / sum(times) if times and sum(times) > 0 else 0.0
        return {"fps": fps, "frame_ms": frame_ms, "generator_fps": gen_fps,
                "tempo_bpm": self.show.controls.tempo_bpm if self._setup_done else 0.0,
                "preset": self.show.preset.name if self._setup_done else ""}

    def _teardown(self) -> None:
        self._wall_s = time.monotonic() - self._started_at if self._started_at else 0.0
        if getattr(self, "_analysis", None) is not None and self._analysis.is_alive():
            self._analysis.join(timeout=5)
        for name, close in (("generator", lambda: self.worker.stop()),
                            ("osc", lambda: self.osc.stop()),
                            ("midi", lambda: self.midi.close()),
                            ("audio input", lambda: self._audio_in.stop()),
                            ("audio output", lambda: self._audio_out.stop()),
                            ("recording", lambda: self.recorder.close())):
            try:
                close()
            except AttributeError:
                pass                     # that part was never started
            except Exception as exc:  # noqa: BLE001 - close the rest regardless
                log.warning("closing %s failed: %s", name, exc)
        if self.options.report is not None and self._setup_done:
            from phosphene.live.report import write_report

            write_report(self.options.report, self.report())
            log.info("run report written to %s", self.options.report)

    def report(self) -> dict:
        if not self._setup_done:
            return {}
        state = self.state
        worker = self.worker
        audio: dict[str, Any] = {"source": self.audio_source_name,
                                 "sample_rate": self.sample_rate,
                                 "hop_length": self.analyzer.hop_length,
                                 "seconds_analysed": self.clock / self.sample_rate}
        if self._audio_in is not None:
            audio.update(self._audio_in.stats())
            audio["silent_blocks"] = self._audio_in.silent_blocks
        else:
            audio["overflows"] = 0
        if self._audio_out is not None:
            audio["output"] = {**self._audio_out.stats(), "skipped_blocks": self.output_skipped}
        osc = self.osc.stats.snapshot() if self.osc is not None else {"accepted": {},
                                                                         "rejected": {}}
        if self.osc is not None:
            osc["address"] = f"{self.osc.address[0]}:{self.osc.address[1]}"
        midi = {"accepted": dict(self.counters.midi_by_address),
                "rejected": self.midi.router.ignored if self.midi is not None else 0,
                "ports": list(self._midi_ports)}
        clips = {"played": dict(self.clips.played), "errors": self.clips.errors} \
            if self.clips is not None else None
        intervals = self.frame_times.intervals()
        return build_report(
            preset=self.show.preset.name, model=self.model_source,
            device=str(self.generator.device), wall_s=self._wall_s,
            frames={"presented": self.frame_times.count, "generated": worker.generated,
                    "generator_errors": worker.errors, "requests_superseded": worker.superseded,
                    "fps": self.frame_times.fps(), "frame_time_ms": percentiles_ms(intervals),
                    "generator_ms": percentiles_ms(worker.render_times_s)},
            audio=audio,
            onsets={"detected": self.counters.onsets, **self.latency.summary(),
                    "analyzer_delay_ms": 1000.0 * self.analyzer.onset_delay_samples
                    / self.sample_rate},
            osc=osc, midi=midi, keys={"events": self.counters.key_events}, clips=clips,
            display=dict(self.display_info),
            preset_switches=self.counters.preset_switches,
            errors=self.errors.entries(),
            final={"preset": state.preset_name, "keyframe": state.request.keyframe,
                   "parameters": dict(state.values),
                   "effects_enabled": dict(state.effects_enabled)})


def _leave_a_core_for_the_display() -> None:
    """On the CPU, torch would take every core and starve the analysis and display threads
    (an onset's flash would wait for a GAN frame). Keep one core free."""
    import os

    import torch

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)


def _effect_refs(preset) -> dict[str, str]:
    from phosphene.live.display import effect_refs_of

    return effect_refs_of(preset)


def _new_watcher(path: Path, preset):
    from phosphene.live.presets import PresetWatcher

    return PresetWatcher(path, preset)
