"""One session: preset -> analyzer -> generator -> show, assembled once for every way phosphene
runs a show — the live engine, an offline render and a replay of a recorded set.

A ``Session`` is stepped hop by hop: the events due before the hop are carried out through the
routes (``route``), then the hop's audio goes through the analyzer and the show (``advance``);
``step`` does both. The live engine mixes clips into the analysis input between the two, so it
calls them apart; offline render and replay call ``step``. Because the three share this code,
a preset looks the same on stage, in a rendered video and in a replay.

``ShowSource`` is what a session is made from: a preset (shipped, a file, or recorded in a set),
the folder its relative keyframe files are in, the model, the analyzer settings and, for a
replay, the recorded events.
"""

from __future__ import annotations

import dataclasses
import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from phosphene.errors import PhospheneError
from phosphene.live.analysis.analyzer import Analyzer
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.analysis.settings import AnalyzerSettings
from phosphene.live.control import routes
from phosphene.live.runtime.generation import FrameGenerator
from phosphene.live.runtime.recording import read_recording
from phosphene.live.show.events import ControlEvent
from phosphene.live.show.presets import Preset, load_preset, parse_preset
from phosphene.live.show.quantize import Quantizer, Release
from phosphene.live.show.show import GeneratorFacts, Show, ShowState
from phosphene.models.device import pick_device
from phosphene.models.latent.projection_cache import cached_projector
from phosphene.models.loading import load_generator

log = logging.getLogger(__name__)


@dataclass
class ShowSource:
    """A preset and the facts a session needs about where it came from."""

    preset: Preset
    base_dir: Path | None                        # for relative keyframe files
    model_source: str
    events: list[ControlEvent] = field(default_factory=list)   # to replay
    analyzer: dict = field(default_factory=dict)  # analyzer settings (preset's, or recorded)
    path: Path | None = None                     # the preset file (None: recorded in a set)
    origin: str = "preset"                       # names the source in error messages


def source_from_preset(preset_ref: str | None, model: str | None = None) -> ShowSource:
    """A shipped preset by name, or a preset file (``model`` instead of the preset's)."""
    preset, path = load_preset(preset_ref or "default")
    return ShowSource(preset, path.parent, model or preset.model, [], dict(preset.analyzer),
                      path, str(path))


def source_from_recording(directory: str | Path, model: str | None = None) -> tuple[ShowSource, Path]:
    """The preset, events and analyzer settings of a recorded set (``phosphene live --record
    DIR``); returns the source and the recorded audio's path."""
    rec = read_recording(directory)
    session = rec.session
    try:
        data = yaml.safe_load(session["preset_yaml"])
    except yaml.YAMLError as exc:
        raise PhospheneError(f"{directory}: the recorded preset is not valid YAML: {exc}") from None
    preset = parse_preset(data, origin=f"{directory} (recorded preset)")
    if not preset.name and session.get("preset_name"):
        preset = preset.model_copy(update={"name": session["preset_name"]})
    base = session.get("preset_dir")
    recorded = session.get("analyzer") or {}
    analyzer = recorded or dict(preset.analyzer)
    if recorded and "onset_detector" not in recorded:
        # the engine's full settings from before onset detectors could be chosen (issue 15):
        # replay the onset path the set ran with live
        analyzer = {**analyzer, "onset_detector": "classic"}
    if session.get("hop_length") and "hop_length" not in analyzer:
        analyzer = {**analyzer, "hop_length": int(session["hop_length"])}
    return ShowSource(preset, Path(base) if base else None, model or session["model_source"],
                      list(rec.events), analyzer, None, str(directory)), rec.audio_path


def analyzer_settings(source: ShowSource) -> AnalyzerSettings:
    """The source's analyzer settings, validated (the message names the source)."""
    try:
        return AnalyzerSettings(**source.analyzer)
    except ValueError as exc:     # pydantic's message names the key
        raise PhospheneError(f"{source.origin}: analyzer: {exc}".replace("\n", " ")) from None


def open_generator(model_source: str, device: str = "auto", *, generator: Any = None,
                   max_batch: int = 1, deterministic: bool = False,
                   synthesis: Callable | None = None) -> tuple[FrameGenerator, str]:
    """The frame generator for ``model_source`` on ``device`` (``auto``: cuda, mps, cpu).
    ``generator``: an already loaded model used instead (tests and benchmarks share one).
    ``deterministic``: the same numbers on every run (renders, replays): no autotuned,
    run-to-run varying convolution choice. Returns the generator and the model's name."""
    import torch  # heavy: the session is the first to need it

    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch_device = pick_device(device)
    if generator is not None:
        G = generator.to(torch_device)
        name = getattr(generator, "source", None) or model_source or "<in-process generator>"
    else:
        log.info("loading generator %s on %s", model_source, torch_device)
        G = load_generator(model_source, device=torch_device)
        name = model_source
    return FrameGenerator(G, torch_device, max_batch=max_batch, synthesis=synthesis), name


def _layer_facts(generator: FrameGenerator, model: str) -> GeneratorFacts:
    """A ``layer:`` model's facts for the show, loaded when its preset loads (kept by the
    generator for its frames; its ``- project:`` keyframes are projected with it)."""
    facts = generator.layer_facts(model)
    G = generator.layer_generator(model).G
    return dataclasses.replace(facts, projector=cached_projector(G))


class Session:
    """The running pipeline of one show: analyzer + show over one generator's latent space."""

    def __init__(self, source: ShowSource, sample_rate: int, generator: FrameGenerator, *,
                 settings: AnalyzerSettings | None = None, recorder: Any = None):
        self.source = source
        self.sample_rate = int(sample_rate)
        self.generator = generator
        self.recorder = recorder
        self.analyzer = Analyzer(self.sample_rate, settings or analyzer_settings(source))
        # ``- project:`` keyframes are projected with this generator (the first time: a log line
        # and a progress bar) and cached in the user cache
        facts = GeneratorFacts.from_generator(generator.G, generator.device)
        self.facts = dataclasses.replace(facts, projector=cached_projector(generator.G),
                                         layer_facts=lambda model: _layer_facts(generator, model))
        self.show = Show(source.preset, self.facts, self.sample_rate, base_dir=source.base_dir,
                         recorder=recorder)
        # a bend on a block the model lacks, a mix model that does not fit: said now
        generator.prepare(self.show.state().request)
        self.last_frame: FeatureFrame | None = None     # the newest hop (the overlay's meter)
        # quantized actions (show/quantize.py): what waits for its beat or bar, and how early
        # it fires (live: the engine sets the render latency; offline and replay: none)
        self.quantizer: Quantizer[ControlEvent] = Quantizer(self.sample_rate, self.hop_length)
        self.lookahead_s = 0.0              # a picture's: analysis to screen
        self.sound_lookahead_s = 0.0        # a clip's: analysis to the speaker
        self.quantized = {"held": 0, "released": 0, "done_at_once": 0}
        self.releases: deque[dict] = deque(maxlen=16)   # the last few, for the report

    @property
    def hop_length(self) -> int:
        return self.analyzer.hop_length

    @property
    def clock(self) -> int:
        """Samples analysed so far: the one clock."""
        return self.show.sample_index

    def route(self, events: Iterable[ControlEvent], actions: routes.Actions | None = None,
              on_error: Callable[[ControlEvent, Exception], None] | None = None) -> None:
        """Carry out the events due before the next hop (recorded first, stamped with the hop
        they are applied at: an event that arrives while a hop is processed carries the
        previous hop's clock and would otherwise replay early)."""
        due = [self._released(r) for r in self.quantizer.due(self.clock)]
        now: list[ControlEvent] = []
        default = self.show.preset.quantize
        for event in events:
            try:
                mode = routes.quantize_of(event, default)
            except routes.Rejected:
                mode = "off"                 # a stale word: done at once, as it says nothing
            if mode == "off":
                now.append(event)
                continue
            # recorded as done (the word "off"): a replay does it at the same hop
            event = routes.unquantized(event)
            sound = event.address == routes.CLIP_PLAY_ADDRESS
            lookahead = round((self.sound_lookahead_s if sound else self.lookahead_s)
                              * self.sample_rate)
            if self.quantizer.hold(event, mode, self.clock, lookahead):
                self.quantized["held"] += 1
            else:                            # no tempo to wait on: now
                self.quantized["done_at_once"] += 1
                now.append(event)
        events = due + now
        if any(e.address == routes.PANIC_ADDRESS for e in events):
            self.quantizer.drop_all()        # a panic cancels what waits for its line
        if self.recorder is not None:
            for event in events:
                self.recorder.write_event(event, applied_at=self.clock)
        routes.perform(events, self.show, actions, on_error)

    def _released(self, release: Release[ControlEvent]) -> ControlEvent:
        self.quantized["released"] += 1
        self.releases.append({
            "address": release.item.address, "unit": release.unit, "line": release.target,
            "line_sample": None if release.line_sample is None else round(release.line_sample),
            "applied_at": release.applied_at, "lookahead_samples": release.lookahead})
        # stamped where it should start: a clip starts on the sample heard on the line
        return dataclasses.replace(release.item, sample_index=release.start_sample)

    def advance(self, block: np.ndarray) -> tuple[FeatureFrame, ShowState]:
        """One hop of audio through the analyzer and the show."""
        frame = self.last_frame = self.analyzer.process(block)
        return frame, self._advance_show(frame)

    def _advance_show(self, frame: FeatureFrame) -> ShowState:
        state = self.show.advance(frame)
        self.quantizer.observe(frame, self.show.beat(), self.show.controls.tempo_bpm)
        return state

    def advance_without_audio(self) -> tuple[FeatureFrame, ShowState]:
        """One hop of silence on the show's own clock, for when the analyzer cannot go on:
        the picture keeps moving (mappings decay, drift goes on) and the analyzer is kept in
        step, so its next good hop continues the clock."""
        frame = self.last_frame = FeatureFrame.silent(self.clock + self.hop_length,
                                                      self.sample_rate)
        self.analyzer.sample_index = frame.sample_index
        return frame, self._advance_show(frame)

    def reset_analyzer(self) -> None:
        """A fresh analyzer (same settings) that goes on from the current clock: its state
        (envelopes, onset history, tempo) starts over, the one clock does not."""
        analyzer = Analyzer(self.sample_rate, self.analyzer.settings)
        analyzer.sample_index = self.clock
        self.analyzer = analyzer

    def step(self, block: np.ndarray, events: Iterable[ControlEvent] = ()) -> ShowState:
        """``route`` then ``advance`` (offline render, replay: no actions, a record only)."""
        self.route(events)
        return self.advance(block)[1]
