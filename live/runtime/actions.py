"""What the ``action`` routes do in a running show: switch presets, play clips, MIDI learn,
save captured keyframes into the preset.

``LiveActions`` implements ``phosphene.live.control.routes.Actions`` for the engine; it runs on
the analysis thread, between hops (``Session.route``). It also owns what changes with the
preset: the preset file being watched for saves (hot reload), the namespace context the OSC and
MIDI threads validate against (replaced whole, an atomic assignment, never mutated), and the
MIDI bindings.

Nothing here may stop the show: a preset that does not load, a clip that does not exist, a
learn without MIDI raise ``ActionFailed``; the engine logs it, counts it in the report
(``errors``) and answers the sender on ``/phosphene/error``, and the show goes on.

A save of the running preset's file is applied as an edit (``Show.edit_preset``): what the
performer set live stays, what changed in the file applies. MIDI learn's own save of a binding
is no reload at all (the watcher is told the text before it is written).
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path
from typing import Any

from phosphene.errors import PhospheneError
from phosphene.live.control.midi import MidiRouter, save_cc_binding
from phosphene.live.control.routes import ActionFailed, NamespaceContext
from phosphene.live.runtime.keyframe_save import is_shipped_preset, save_captured_keyframes
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
            raise ActionFailed(f"preset {name} not loaded, the running one stays: {exc}") \
                from None

    def step_preset(self, step: int) -> None:
        # by file, not by the preset's name: a copied preset often keeps the original's name
        try:
            name = self.catalog.neighbour(self.path, step)
        except PhospheneError as exc:
            raise ActionFailed(str(exc)) from None
        self.load_preset(name)

    def play_clip(self, name: str, gain: float, sample_index: int) -> None:
        if self.clips is None:
            raise ActionFailed("no clip bank (start with --bank DIR)")
        if not self.clips.play(name, gain, at_sample=max(sample_index, self.block_start)):
            raise ActionFailed(f"clip {name!r} could not be played")

    def stop_clip(self, name: str) -> None:
        if self.clips is not None:
            self.clips.stop(name)

    def stop_all_clips(self) -> None:
        if self.clips is not None:
            self.clips.stop_all()

    def learn_midi(self, parameter: str) -> None:
        if self.midi is None:
            raise ActionFailed("no MIDI input (start with --midi PORT|all)")
        try:
            self.midi.router.arm_learn(parameter)
        except PhospheneError as exc:
            raise ActionFailed(str(exc)) from None

    def cancel_midi_learn(self) -> None:
        if self.midi is not None:
            self.midi.router.cancel_learn()

    def save_keyframes(self) -> None:
        """The keyframes captured since the preset loaded, saved into its file
        (``keyframe_save.py``), then applied as an edit of the file: the show goes on with the
        same keyframes, now the preset's own (a replay makes the same edit)."""
        captured = self.show.captured_keyframes()
        if not captured:
            raise ActionFailed("keyframe save: nothing captured since the preset loaded "
                               "(send /phosphene/keyframe/capture [name] first)")
        if is_shipped_preset(self.path):
            raise ActionFailed(f"keyframe save: {self.path.name} is a shipped preset and is "
                               "never written; copy it to a folder of your own and run "
                               "with --preset PATH to save keyframes into it")
        try:
            preset, files = save_captured_keyframes(self.path, captured,
                                                    before_write=self.watcher.expect_own_save)
        except (PhospheneError, OSError, ValueError) as exc:
            raise ActionFailed(f"keyframe save into {self.path} failed: {exc}") from None
        self.apply_edit(preset)
        log.info("keyframe save: %d keyframe(s) saved into %s (%s)", len(files), self.path,
                 ", ".join(f.name for f in files))

    def blackout(self, on: bool | None) -> None:
        """The blackout's live side: going to black stops every clip (coming back does not
        restart them). Runs before the hop's show events (``routes.perform``), so a toggle
        (``on=None``) reads the show's blackout as it is before this event."""
        if on is None:
            on = not self.show.blacked_out
        if on:
            self.stop_all_clips()
            log.info("blackout: clips stopped")

    def panic(self) -> None:
        """The panic's live side: every clip stopped, a pending MIDI learn cancelled."""
        self.stop_all_clips()
        self.cancel_midi_learn()
        log.warning("panic: picture black, clips stopped, effects back to the preset's")

    # -- presets ----------------------------------------------------------------------------------
    def install(self, preset: Preset, path: Path, crossfade_s: float | None = None) -> None:
        """Switch the show to ``preset`` (from ``path``) and everything that follows it."""
        self.show.switch_preset(preset, crossfade_s, base_dir=path.parent)
        self._check_model(preset)
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

    def _check_model(self, preset: Preset) -> None:
        # against the model actually running (not the previous preset's: two presets naming
        # the same model are no news); the generator is never swapped during a show
        if preset.model != self.model_source and not self.model_fixed:
            log.warning("preset %s names model %s; the show keeps %s", preset.name,
                        preset.model, self.model_source)

    def apply_edit(self, preset: Preset) -> None:
        """The running preset's file was saved with ``preset``: the show applies what changed
        and keeps what the performer set live (``Show.edit_preset``); the namespace, MIDI
        bindings and clip gain follow the file. A pending MIDI learn stays armed."""
        self.show.edit_preset(preset, RELOAD_CROSSFADE_S)
        self._check_model(preset)
        self.preset = preset
        self.context = namespace_context(preset)      # replaced whole: read by other threads
        if self.midi is not None:
            learning = self.midi.router.learning
            router = self.midi_router(preset)
            if learning is not None and learning in self.context.parameters:
                router.arm_learn(learning)
            self.midi.router = router
        if self.clips is not None:
            self.clips.gain = preset.clips.gain
        log.info("preset %s edited: changes applied, live values kept", preset.name)

    def poll_preset_file(self) -> None:
        """Hot reload: a save of the running preset's file is applied as an edit (live values
        kept); a broken one is logged and the running preset stays."""
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
                self.apply_edit(preset)
            except PhospheneError as exc:
                log.error("reloaded preset not applied: %s", exc)
                self.errors.add("preset reload", str(exc))

    def on_learn(self, binding) -> None:
        """A MIDI-learned CC (MIDI thread): saved into the preset file (never into a shipped
        one). The watcher knows the save is ours: no reload, the live values stay."""
        path, watcher = self.path, self.watcher
        shipped_dir = Path(str(importlib.resources.files("phosphene.presets")))
        if path.parent.resolve() == shipped_dir.resolve() and path.stem in shipped_presets():
            log.warning("MIDI learn: CC %d -> %s works for this run; not saved into the shipped "
                        "preset %s (copy it to a folder of your own to keep bindings)",
                        binding.control, binding.target, path.name)
            return
        save_cc_binding(path, binding, before_write=watcher.expect_own_save)
        log.info("MIDI learn: CC %d -> %s saved into %s", binding.control, binding.target, path)
