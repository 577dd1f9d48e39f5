"""What the ``action`` routes do in a running show: switch presets, play clips, MIDI learn.

``LiveActions`` implements ``phosphene.live.control.routes.Actions`` for the engine; it runs on
the analysis thread, between hops (``Session.route``). It also owns what changes with the
preset: the preset file being watched for saves (hot reload), the namespace context the OSC and
MIDI threads validate against (replaced whole, an atomic assignment, never mutated), and the
MIDI bindings.

Nothing here may stop the show: a preset that does not load, a clip that does not exist, a
learn without MIDI are logged, counted in the report (``errors``) and the show goes on.
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path
from typing import Any

from phosphene.errors import PhospheneError
from phosphene.live.control.midi import MidiRouter, save_cc_binding
from phosphene.live.control.routes import NamespaceContext
from phosphene.live.runtime.report import ErrorLog
from phosphene.live.show.catalog import PresetCatalog
from phosphene.live.show.presets import Preset, PresetWatcher, shipped_presets
from phosphene.live.show.show import Show

log = logging.getLogger(__name__)

# How fast a saved preset fades in (a performer editing a file wants to see the change now).
RELOAD_CROSSFADE_S = 0.25


def namespace_context(preset: Preset) -> NamespaceContext:
    """What a preset offers to control surfaces: its parameters and its effects."""
    return NamespaceContext(parameters=preset.parameter_specs(),
                            effects=frozenset(preset.effect_names()))


class LiveActions:
    """Preset switching, clips and MIDI learn for one live run."""

    def __init__(self, show: Show, preset: Preset, path: Path, *, errors: ErrorLog,
                 model_source: str, model_fixed: bool, clips: Any = None, midi: Any = None):
        self.show = show
        self.preset, self.path = preset, path
        self.errors = errors
        self.model_source = model_source
        self.model_fixed = model_fixed            # --model given: presets' models are ignored
        self.clips = clips
        self.midi = midi
        self.catalog = PresetCatalog(path.parent)
        self.watcher = PresetWatcher(path, preset)
        self.context = namespace_context(preset)  # read by the OSC and MIDI threads
        self.switches = 0
        self.block_start = 0                      # the hop the routes are applied before

    def midi_router(self, preset: Preset) -> MidiRouter:
        return MidiRouter.from_preset(preset, lambda: self.context, self.on_learn)

    # -- routes.Actions ---------------------------------------------------------------------------
    def load_preset(self, name: str) -> None:
        try:
            preset, path = self.catalog.load(name)
            self.install(preset, path)
        except PhospheneError as exc:
            log.error("preset %s not loaded, the running one stays: %s", name, exc)
            self.errors.add("/phosphene/preset/load", str(exc))

    def step_preset(self, step: int) -> None:
        self.load_preset(self.catalog.neighbour(self.show.preset.name, step))

    def play_clip(self, name: str, gain: float, sample_index: int) -> None:
        if self.clips is None:
            self._refuse("/phosphene/clip/play", "no clip bank (start with --bank DIR)")
        elif not self.clips.play(name, gain, at_sample=max(sample_index, self.block_start)):
            self.errors.add("/phosphene/clip/play", f"clip {name!r} could not be played")

    def stop_clip(self, name: str) -> None:
        if self.clips is not None:
            self.clips.stop(name)

    def stop_all_clips(self) -> None:
        if self.clips is not None:
            self.clips.stop_all()

    def learn_midi(self, parameter: str) -> None:
        if self.midi is None:
            self._refuse("/phosphene/midi/learn", "no MIDI input (start with --midi PORT|all)")
        else:
            self.midi.router.arm_learn(parameter)

    def cancel_midi_learn(self) -> None:
        if self.midi is not None:
            self.midi.router.cancel_learn()

    def _refuse(self, address: str, reason: str) -> None:
        log.warning("%s ignored: %s", address, reason)
        self.errors.add(address, reason)

    # -- presets ----------------------------------------------------------------------------------
    def install(self, preset: Preset, path: Path, crossfade_s: float | None = None) -> None:
        """Switch the show to ``preset`` (from ``path``) and everything that follows it."""
        self.show.switch_preset(preset, crossfade_s, base_dir=path.parent)
        if preset.model != self.preset.model and not self.model_fixed:
            log.warning("preset %s names model %s; the show keeps %s", preset.name,
                        preset.model, self.model_source)
        self.preset, self.path = preset, path
        self.watcher = PresetWatcher(path, preset)
        self.context = namespace_context(preset)      # replaced whole: read by other threads
        if self.midi is not None:
            self.midi.router = self.midi_router(preset)
        if self.clips is not None:
            self.clips.gain = preset.clips.gain
        self.switches += 1
        log.info("preset %s (crossfade %.1f s)", preset.name,
                 preset.crossfade_ms / 1000.0 if crossfade_s is None else crossfade_s)

    def poll_preset_file(self) -> None:
        """Hot reload: a save of the running preset's file is applied; a broken one is
        logged and the running preset stays."""
        try:
            preset = self.watcher.poll()
        except Exception as exc:  # noqa: BLE001 - a file system hiccup must not stop the show
            self.errors.add("preset reload", str(exc))
            return
        if self.watcher.error:
            self.errors.add("preset reload", self.watcher.error)
            self.watcher.error = None
        if preset is not None:
            try:
                self.install(preset, self.path, crossfade_s=RELOAD_CROSSFADE_S)
            except PhospheneError as exc:
                log.error("reloaded preset not applied: %s", exc)
                self.errors.add("preset reload", str(exc))

    def on_learn(self, binding) -> None:
        """A MIDI-learned CC: saved into the preset file (never into a shipped one)."""
        path = self.path
        shipped_dir = Path(str(importlib.resources.files("phosphene.presets")))
        if path.parent.resolve() == shipped_dir.resolve() and path.stem in shipped_presets():
            log.warning("MIDI learn: CC %d -> %s works for this run; not saved into the shipped "
                        "preset %s (copy it to a folder of your own to keep bindings)",
                        binding.control, binding.target, path.name)
            return
        save_cc_binding(path, binding)
        log.info("MIDI learn: CC %d -> %s saved into %s", binding.control, binding.target, path)
