"""The show: the pure, deterministic core that decides what the picture looks like.

A ``Show`` is built from a validated preset and the generator's facts. It is driven by two
inputs, both stamped with the audio sample index:

* ``FeatureFrame``s from the analyzer, one per hop, through ``advance``;
* ``ControlEvent``s (OSC, MIDI, keys, a replayed recording), applied between hops by
  ``phosphene.live.control.routes.perform``: each route calls one of the show's operations
  (``set_parameter``, ``enable_effect``, ``tap_tempo``, ``goto_keyframe``, the performer's
  safety controls ``blackout``, ``freeze`` and ``panic``, ...).

``state()`` returns an immutable ``ShowState``: the latent request for the generator and the
effect-chain parameters for the renderer. The same preset, generator facts, frames and events
give the same states, which is what makes a recorded set re-render frame-exact.

Events are applied by ``phosphene.live.control.routes`` (the one table of addresses), which
calls the operations below; ``show/events.py`` has the event rule both live and offline follow.

**Recording**: the engine writes the events it receives (``Recorder.write_event``); the show,
given the recorder (``Show(..., recorder=...)`` or ``show.recorder = ...``), writes what the
engine cannot: each preset switch, as ``/phosphene/preset/loaded`` with the full preset YAML,
stamped with the clock, and each edit of the running preset's file applied live (``edit_preset``,
a hot reload), as ``/phosphene/preset/edited``. A replay applies them at the same hop and never
depends on the presets folder (``/phosphene/preset/load NAME`` lines in the log are then only a
record).

Nothing here imports torch or OpenGL; turning a state into pixels is ``FrameGenerator`` and the
effect chain's job.
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.live.show.bending import bends_now
from phosphene.live.show.controls import Controls
from phosphene.live.show.directions import DirectionSource, LatentDirections
from phosphene.live.show.director import Director, LatentRequest, crossfade
from phosphene.live.show.events import PRESET_EDITED, PRESET_LOADED, ControlEvent
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.show.keyframes import (Mapper, Projector, SeedKeyframe, mapper_from_generator,
                                            resolve_keyframe, resolve_keyframes)
from phosphene.live.show.layering import FADE, Layer
from phosphene.live.show.mappings import MappingBank, MappingState
from phosphene.live.show.mixing import mix_now, resolve_model
from phosphene.live.show.params import ParameterSet
from phosphene.live.show.presets import Preset, parse_preset
from phosphene.live.show.safety import OUTPUT_FADE, blackout_step, combined_fade

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorFacts:
    """What the show needs to know about the generator (no torch in the core)."""

    z_dim: int
    w_dim: int
    num_ws: int
    mapper: Mapper                       # z [z_dim] -> w [num_ws, w_dim], untruncated
    w_avg: np.ndarray | None = None      # [w_dim], the truncation centre
    # (method, layers, samples) -> the model's directions in W as numpy arrays (``vectors``,
    # ``sigmas``, ``rows``), computed or read from the cache outside the core; None: a preset
    # with ``directions:`` cannot run on this generator
    directions: DirectionSource | None = None
    # (image, steps, w_plus) -> w: ``- project:`` keyframes, projected (and cached) outside the
    # core (the session supplies ``models/latent/projection_cache.py``'s); None: a preset with
    # one cannot run on these facts
    projector: Projector | None = None
    # model reference -> that model's facts: the second model of a ``layer:`` preset, loaded
    # outside the core (the session hands over the generator side's loader); None: a preset
    # with a layer cannot run on these facts
    layer_facts: Callable[[str], "GeneratorFacts"] | None = None

    @classmethod
    def from_generator(cls, G, device=None) -> "GeneratorFacts":
        """Read the facts off a ``Generator`` (imports torch through the mapper and the
        direction source only)."""
        # torch: the direction tools compute with the generator the caller has already built
        # (nothing runs until a preset asks for directions)
        from phosphene.models.latent.directions import direction_source

        w_avg = getattr(getattr(G, "mapping", None), "w_avg", None)
        return cls(z_dim=int(G.z_dim), w_dim=int(G.w_dim), num_ws=int(G.num_ws),
                   mapper=mapper_from_generator(G, device),
                   w_avg=None if w_avg is None else w_avg.detach().float().cpu().numpy(),
                   directions=direction_source(G))


@dataclass(frozen=True)
class ShowState:
    """Everything the shells need for one moment of the show. Read-only: arrays and mappings
    cannot be written, so a state can be handed to another thread as it is."""

    sample_index: int                        # audio clock of the hop this state follows
    request: LatentRequest                   # for the generator (w read-only)
    effect_names: tuple[str, ...]            # the preset's chain, in order
    effect_refs: tuple[str, ...]             # each effect's built-in name or shader path
    effect_params: Mapping[str, float]       # "<effect>.<uniform>" -> value
    effects_enabled: Mapping[str, bool]      # effect name -> on/off
    values: Mapping[str, float]              # every parameter's (modulated) value
    preset_name: str
    crossfade: float = 1.0                   # 1.0 = no preset crossfade in progress
    blackout: float = 0.0                    # 0 = the picture, 1 = black (``Show.blackout``)
    frozen: bool = False                     # the picture is held (``Show.freeze``)

    @property
    def w(self) -> np.ndarray:
        return self.request.w

    @property
    def noise_strength(self) -> float:
        return self.request.noise_strength

    @property
    def noise_seed(self) -> int:
        return self.request.noise_seed

    @property
    def psi(self) -> float:
        return self.request.truncation_psi


class _RunningPreset:
    """One preset's controls + director, built against one generator (two run at once while
    a preset switch crossfades). ``director``: an edit of the same preset whose keyframes did
    not change goes on with the running director (its state: keyframe, drift, envelopes)."""

    def __init__(self, preset: Preset, facts: GeneratorFacts, sample_rate: int,
                 base_dir: Path | None, director: Director | None = None):
        self.preset = preset
        self.base_dir = base_dir
        self.effect_names = tuple(preset.effect_names())
        self.effect_refs = tuple(e.name for e in preset.effects)
        params = ParameterSet(list(preset.parameter_specs().values()))
        enabled = {name: e.enabled for name, e in zip(self.effect_names, preset.effects)}
        self.controls = Controls(params, preset.core_mappings(), sample_rate, enabled)
        if director is None:
            keyframes = resolve_keyframes(preset.keyframe_specs(), mapper=facts.mapper,
                                          z_dim=facts.z_dim, num_ws=facts.num_ws,
                                          w_dim=facts.w_dim, base_dir=base_dir,
                                          projector=facts.projector)
            director = Director(keyframes, preset.director_settings(), w_avg=facts.w_avg,
                                fresh_scene=_fresh_scenes(preset, facts))
        else:
            director.settings = preset.director_settings()
        director.directions = _directions(preset, facts)
        self.director = director
        self.num_ws = facts.num_ws
        self.mix_model = None if preset.mix is None else resolve_model(preset.mix.model, base_dir)
        # ``layer:``: the second model's own director, driven like the first (None: no layer)
        self.layer_model, self.layer_director = _layer_director(preset, facts, base_dir)
        self.request: LatentRequest | None = None
        # what the performer changed live (OSC, MIDI, keys): an edit of the preset's file
        # keeps these and applies the rest (``Show.edit_preset``)
        self.touched_params: set[str] = set()
        self.touched_effects: set[str] = set()
        # the keyframes captured live and not saved into the preset yet, with their names
        # (None: unnamed), for ``/phosphene/keyframe/save``
        self.captured: list[tuple[str | None, np.ndarray]] = []

    def advance(self, frame: FeatureFrame, dt_s: float) -> LatentRequest:
        values = self.controls.update(frame, dt_s)
        request = self.director.update(values, frame, dt_s)
        if self.preset.bend or self.preset.mix is not None:
            # the bends and the model mix travel with the request (pure data), so the
            # generator's frame depends on the request alone
            request = dataclasses.replace(
                request, bends=bends_now(self.preset.bend, values),
                mix=None if self.preset.mix is None else mix_now(
                    self.preset.mix, self.mix_model, values, self.num_ws))
        if self.layer_director is not None:
            # the same values, features and time: the two directors move in lockstep
            own = self.layer_director.update(values, frame, dt_s)
            request = dataclasses.replace(request, layer=Layer(
                self.layer_model, float(values.get(FADE, 0.0)), _frozen(own.w),
                float(own.truncation_psi), float(own.noise_strength), int(own.noise_seed),
                int(own.keyframe)))
        self.request = request
        return self.request

    def directors(self) -> tuple[Director, ...]:
        """The directors keyframe events move: the preset's, and the layer's when it has one."""
        return (self.director,) if self.layer_director is None \
            else (self.director, self.layer_director)


def _directions(preset: Preset, facts: GeneratorFacts) -> LatentDirections | None:
    """The preset's ``directions:`` for this generator (computed once per model and request,
    then cached), or None when it has none."""
    spec = preset.directions
    if spec is None:
        return None
    if facts.directions is None:
        raise PhospheneError(f"preset {preset.name or '(unnamed)'}: directions: this generator "
                             "offers no latent directions")
    found = facts.directions(spec.method, spec.layers, spec.samples)
    try:
        return LatentDirections.from_set(found, spec.count)
    except ValueError as exc:
        raise PhospheneError(f"preset {preset.name or '(unnamed)'}: {exc}") from None


def _layer_director(preset: Preset, facts: GeneratorFacts,
                    base_dir: Path | None) -> tuple[str | None, Director | None]:
    """The ``layer:`` model's reference and a director over its latent space: its keyframes
    (the preset's, unless the layer lists its own) resolved through its own mapping network,
    the preset's mode settings, its own truncation centre and fresh scenes. (None, None)
    without a layer."""
    spec = preset.layer
    if spec is None:
        return None, None
    where = f"preset {preset.name or '(unnamed)'}: layer"
    if facts.layer_facts is None:
        raise PhospheneError(f"{where}: this show cannot load a second model")
    model = resolve_model(spec.model, base_dir)
    own = facts.layer_facts(model)          # PhospheneError naming the model if it cannot load
    try:
        keyframes = resolve_keyframes(preset.layer_keyframe_specs(), mapper=own.mapper,
                                      z_dim=own.z_dim, num_ws=own.num_ws, w_dim=own.w_dim,
                                      base_dir=base_dir, projector=own.projector)
    except PhospheneError as exc:
        raise PhospheneError(f"{where}.keyframes ({model}): {exc}") from None
    return model, Director(keyframes, preset.director_settings(), w_avg=own.w_avg,
                           fresh_scene=_fresh_scenes(preset, own))


def _carry_layer(old: _RunningPreset, new: _RunningPreset) -> None:
    """An edit: the layer's director goes on when neither it nor the preset's director
    changed; otherwise the new one starts where the preset's director is now (keyframe index,
    drift position, envelopes), so the two stay in step."""
    if new.layer_director is None:
        return
    if (old.layer_director is not None and new.director is old.director
            and old.layer_model == new.layer_model
            and old.preset.layer_keyframe_specs() == new.preset.layer_keyframe_specs()):
        old.layer_director.settings = new.layer_director.settings
        new.layer_director = old.layer_director
        return
    state = dataclasses.replace(new.director.state, transition=None, fresh_scenes=0,
                                layer_env=dict(new.director.state.layer_env))
    count = len(new.layer_director.keyframes)
    state.index, state.drift_pos = state.index % count, state.drift_pos % count
    new.layer_director.state = state


def _fresh_scenes(preset: Preset, facts: GeneratorFacts):
    """The travel mode's fresh scenes past the last keyframe: seeds ``seed_base``,
    ``seed_base + 1``, ... mapped as seed keyframes are (deterministic, so a replay meets the
    same ones)."""
    base = preset.modes.travel.seed_base

    def scene(k: int) -> np.ndarray:
        return resolve_keyframe(SeedKeyframe((base + k) % 2 ** 32), mapper=facts.mapper,
                                z_dim=facts.z_dim, num_ws=facts.num_ws, w_dim=facts.w_dim)
    return scene


def _carry_live_state(old: _RunningPreset, new: _RunningPreset) -> None:
    """Continue in ``new`` (an edited version of ``old``'s preset) what the performer did live.

    Parameters (by name) glide on from where they are: one the performer set keeps its target
    (clamped to a changed range), one nobody touched heads for its default in the file, so a
    changed default applies. Effects the performer switched keep their switch; the tap tempo,
    and the envelopes and LFO phases of mappings that did not change, go on. A new director
    (the keyframes changed) takes over the keyframe index, drift position, envelopes and the
    keyframes the performer captured."""
    src, dst = old.controls, new.controls
    for name in dst.params.names():
        if name not in src.params:
            continue
        dst.params.set(name, src.params.get(name), immediate=True)
        if name in old.touched_params:
            dst.params.set(name, src.params.target(name))
            new.touched_params.add(name)
        else:
            dst.params.set(name, dst.params.spec(name).default)
    for effect in new.effect_names:
        if effect in old.touched_effects and effect in src.effects_enabled:
            dst.effects_enabled[effect] = src.effects_enabled[effect]
            new.touched_effects.add(effect)
    dst.tap = src.tap
    dst.beat_anchor = src.beat_anchor
    unused = list(zip(src.bank.mappings, src.bank.states))
    states = []
    for mapping in dst.bank.mappings:
        match = next((pair for pair in unused if pair[0] == mapping), None)
        if match is not None:
            unused.remove(match)
        states.append(match[1] if match is not None else MappingState())
    dst.bank = MappingBank(list(dst.bank.mappings), states)
    if new.director is not old.director:
        _carry_director(old, new)
    else:
        new.captured = list(old.captured)
    _carry_layer(old, new)


def _carry_director(old: _RunningPreset, new: _RunningPreset) -> None:
    before, after = old.director, new.director
    n_old, n_new = len(old.preset.keyframes), len(new.preset.keyframes)
    # the keyframes this edit added to the file: a captured keyframe saved into the preset
    # (``/phosphene/keyframe/save``) is now one of them, and is not carried a second time
    old_specs = old.preset.keyframe_specs()
    added = [j for j, spec in enumerate(new.preset.keyframe_specs()) if spec not in old_specs]

    def saved_as(w: np.ndarray) -> int | None:
        return next((j for j in added if after.keyframes[j].shape == w.shape
                     and np.array_equal(after.keyframes[j], w)), None)

    moved: dict[int, int] = {}              # old index of a captured keyframe -> its new one
    captured = before.keyframes[n_old:]
    if captured and captured[0].shape == after.keyframes[0].shape:
        for i, w in enumerate(captured):
            j = saved_as(w)
            if j is None:
                j = len(after.keyframes)
                after.keyframes.append(np.array(w, copy=True))
            moved[n_old + i] = j
    new.captured = [(name, w) for name, w in old.captured if saved_as(w) is None]
    s, t = before.state, after.state
    index = s.index % len(before.keyframes)
    if index >= n_old:                      # a captured keyframe: it moved along with the list
        index = moved.get(index, n_new + index - n_old)
    t.index = index % len(after.keyframes)
    t.drift_pos = s.drift_pos % len(after.keyframes)
    t.blend_env, t.onset_count, t.noise_env = s.blend_env, s.onset_count, s.noise_env
    t.noise_seed, t.time_s, t.layer_env = s.noise_seed, s.time_s, dict(s.layer_env)
    t.travel_since_s, t.travel_progress = s.travel_since_s, s.travel_progress
    t.since_move_s = s.since_move_s
    t.onset_rate, t.fresh_scenes = s.onset_rate, s.fresh_scenes


def _frozen(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float32, copy=True)
    out.setflags(write=False)
    return out


class Show:
    """The deterministic core: preset + generator facts + frames + events -> ``ShowState``."""

    def __init__(self, preset: Preset, facts: GeneratorFacts, sample_rate: int, *,
                 base_dir: str | Path | None = None, recorder=None):
        self.facts = facts
        self.recorder = recorder                 # anything with write_event(ControlEvent)
        self.sample_rate = int(sample_rate)
        self.base_dir = None if base_dir is None else Path(base_dir)
        self._running = _RunningPreset(preset, facts, self.sample_rate, self.base_dir)
        self._old: _RunningPreset | None = None          # the scene being faded out
        self._fade_s = 0.0
        self._fade_elapsed_s = 0.0
        self.sample_index = 0
        # performer safety, over whichever preset runs (not part of a scene)
        self._blackout = 0.0                     # fade level now: 0 picture .. 1 black
        self._blackout_on = False                # where the fade is heading
        self._held: ShowState | None = None      # freeze: the live state held on screen
        self._held_fade = 0.0                    # ... and its preset's own output.fade
        self._live: ShowState | None = None      # the newest live state (moves while frozen)
        self._live_fade = 0.0
        # evaluate once at time 0 (silence, no time passing) so state() is valid immediately
        self._step(FeatureFrame.silent(0, self.sample_rate), 0.0)

    # -- what is loaded --------------------------------------------------------------------------
    @property
    def preset(self) -> Preset:
        return self._running.preset

    @property
    def controls(self) -> Controls:
        return self._running.controls

    @property
    def director(self) -> Director:
        return self._running.director

    @property
    def effect_names(self) -> tuple[str, ...]:
        return self._running.effect_names

    def switch_preset(self, preset: Preset, crossfade_s: float | None = None, *,
                      base_dir: str | Path | None = None) -> None:
        """Load another preset; its latents fade in over ``crossfade_s`` (default: the new
        preset's ``crossfade_ms``). Effects switch at once (the chain is the new preset's).
        Raises ``PhospheneError`` (e.g. a missing keyframe file) and keeps the running scene."""
        new = _RunningPreset(preset, self.facts, self.sample_rate,
                             self.base_dir if base_dir is None else Path(base_dir))
        new.controls.beat_anchor = self._running.controls.beat_anchor   # the clock goes on
        fade = preset.crossfade_ms / 1000.0 if crossfade_s is None else max(float(crossfade_s), 0.0)
        # first look of the new scene: evaluated now, without time passing
        new.advance(FeatureFrame.silent(self.sample_index, self.sample_rate), 0.0)
        self._old = self._running if fade > 0.0 else None
        self._running = new
        self._fade_s, self._fade_elapsed_s = fade, 0.0
        # the state shows the switch at once: the new chain, latents still the old scene's
        if self._old is not None and self._old.request is not None:
            self._publish(crossfade(self._old.request, new.request, 0.0), 0.0)
        else:
            self._publish(new.request, 1.0)
        if self.recorder is not None:
            folder = self.base_dir if base_dir is None else Path(base_dir)
            self.recorder.write_event(ControlEvent(self.sample_index, PRESET_LOADED, (
                preset.name, preset_to_yaml(preset), fade,
                "" if folder is None else str(folder.resolve())), origin="preset"))

    def edit_preset(self, preset: Preset, fade_s: float = 0.0) -> None:
        """Apply an edited version of the running preset (a save of its file), keeping what the
        performer did live: parameters set over OSC, MIDI or keys keep their values, effects
        switched on or off stay so, the keyframe, captured keyframes and the tap tempo go on.
        The rest follows the file: defaults of parameters nobody set (effect parameters and
        mode weights among them), ranges, smoothing, mappings, mode settings, the chain.

        Keyframes unchanged: the director goes on as it was, nothing fades. Keyframes changed:
        the new ones fade in over ``fade_s`` from the same keyframe index. Raises
        ``PhospheneError`` (e.g. a missing keyframe file) and keeps the running scene.
        Recorded as ``PRESET_EDITED`` so that a replay makes the same edit at the same hop."""
        old = self._running
        same_keyframes = preset.keyframe_specs() == old.preset.keyframe_specs()
        new = _RunningPreset(preset, self.facts, self.sample_rate, old.base_dir,
                             director=old.director if same_keyframes else None)
        _carry_live_state(old, new)
        # the edited scene's first look: evaluated now, without time passing
        new.advance(FeatureFrame.silent(self.sample_index, self.sample_rate), 0.0)
        fade = 0.0 if same_keyframes else max(float(fade_s), 0.0)
        self._running = new
        if fade > 0.0:
            self._old, self._fade_s, self._fade_elapsed_s = old, fade, 0.0
        # (keyframes unchanged: a preset switch still fading out goes on fading out)
        if self._old is not None and self._old.request is not None:
            amount = min(self._fade_elapsed_s / self._fade_s, 1.0) if self._fade_s > 0 else 1.0
            self._publish(crossfade(self._old.request, new.request, amount), amount)
        else:
            self._publish(new.request, 1.0)
        if self.recorder is not None:
            self.recorder.write_event(ControlEvent(self.sample_index, PRESET_EDITED, (
                preset.name, preset_to_yaml(preset), fade), origin="preset"))

    # -- operations (what the routes of ``control/routes.py`` call) ------------------------------
    # A name that is not in the running scene is ignored: the sender validated it against the
    # scene it saw, and a preset switch may have happened since; the show goes on.
    def set_parameter(self, name: str, value: float, *, immediate: bool = False) -> None:
        params = self._running.controls.params
        if name in params:
            params.set(name, float(value), immediate=immediate)
            self._running.touched_params.add(name)

    def enable_effect(self, effect: str, on: bool) -> None:
        self._running.controls.effects_enabled[effect] = bool(on)
        self._running.touched_effects.add(effect)

    def tap_tempo(self, sample_index: int) -> None:
        """A tap at ``sample_index``; from the second tap on it sets ``tempo_bpm``."""
        bpm = self._running.controls.tap.tap(sample_index)
        if bpm is not None:
            self.set_parameter("tempo_bpm", bpm, immediate=True)

    def sync_beat(self, sample_index: int, beat: float) -> None:
        """An external clock (Link, MIDI clock) is at ``beat`` at ``sample_index``."""
        self._running.controls.sync_beat(sample_index, beat)
        if self._old is not None:
            self._old.controls.sync_beat(sample_index, beat)

    def lock_heard_tempo(self) -> None:
        """Set the tempo to what the analyzer hears now (a Link session then takes it); with
        no tempo heard yet the tempo stays as it is."""
        if self.heard_tempo_bpm > 0.0:
            self.set_parameter("tempo_bpm", self.heard_tempo_bpm, immediate=True)
        else:
            log.info("tempo lock: the analyzer has no tempo yet; the tempo stays")

    def beat(self) -> float | None:
        """The external clock's beat now (None without one)."""
        return self._running.controls.beat_at(self.sample_index)

    def step_keyframe(self, delta: int) -> None:
        for director in self._running.directors():
            director.step(delta)

    def goto_keyframe(self, index: int) -> None:
        for director in self._running.directors():
            director.goto(int(index))

    def capture_keyframe(self, name: str | None = None) -> None:
        """Add the latent on screen as a keyframe (``name``: what a save calls it)."""
        director = self._running.director
        index = director.capture()
        self._running.captured.append((name, director.keyframes[index]))
        if self._running.layer_director is not None:
            # the layer's latent on screen too, so the two keyframe lists stay in step
            self._running.layer_director.capture()

    def captured_keyframes(self) -> list[tuple[str | None, np.ndarray]]:
        """The keyframes captured in the running preset and not in its file yet: (name or
        None, ``w`` [num_ws, w_dim]), in capture order."""
        return [(name, np.array(w, copy=True)) for name, w in self._running.captured]

    # -- performer safety (``/phosphene/blackout``, ``/freeze``, ``/panic``) ---------------------
    @property
    def blacked_out(self) -> bool:
        """Whether the blackout is on (the picture is black or fading to black)."""
        return self._blackout_on

    @property
    def frozen(self) -> bool:
        return self._held is not None

    def blackout(self, on: bool | None = None) -> None:
        """Fade the picture to black (``on``), or back (``show/safety.py`` has the
        timings); ``None`` toggles. Audio time, so a replay fades the same; the
        analysis, the latents and the effects go on underneath."""
        self._blackout_on = (not self._blackout_on) if on is None else bool(on)

    def freeze(self, on: bool | None = None) -> None:
        """Hold the picture (``on``): the state on screen now -- latents, effect values,
        switches -- stays there while the show goes on underneath with the music (the
        blackout still acts). Released, the live state is shown again. ``None`` toggles."""
        on = (self._held is None) if on is None else bool(on)
        if on and self._held is None and self._live is not None:
            self._held, self._held_fade = self._live, self._live_fade
        elif not on:
            self._held = None

    def panic(self) -> None:
        """Black at once (no fade), a freeze released, and every effect of the running
        preset back to how the preset has it (values and on/off), so the picture that comes
        back (``blackout(False)``) is the designed one. Latents and other parameters stay."""
        self._blackout_on, self._blackout = True, 1.0
        self._held = None
        scene = self._running
        params = scene.controls.params
        prefixes = tuple(f"{name}." for name in scene.effect_names)
        for name in params.names():
            if name.startswith(prefixes):
                params.set(name, params.spec(name).default, immediate=True)
        scene.controls.effects_enabled.update(
            {name: e.enabled for name, e in zip(scene.effect_names, scene.preset.effects)})

    def switch_to_recorded(self, name: str, text: str, fade_s: float | None = None,
                           folder: str = "") -> None:
        """Replay a recorded switch (``PRESET_LOADED``): the preset comes from its recorded
        YAML, never from the presets folder, so a replay does not depend on files changed
        since."""
        import yaml

        preset = parse_preset(yaml.safe_load(text), origin=f"recorded preset {name!r}")
        if not preset.name:
            preset = preset.model_copy(update={"name": str(name)})
        self.switch_preset(preset, None if fade_s is None else float(fade_s),
                           base_dir=Path(folder) if folder else None)

    def edit_to_recorded(self, name: str, text: str, fade_s: float = 0.0) -> None:
        """Replay a recorded edit (``PRESET_EDITED``) from its recorded YAML."""
        import yaml

        preset = parse_preset(yaml.safe_load(text), origin=f"recorded preset {name!r}")
        if not preset.name:
            preset = preset.model_copy(update={"name": str(name)})
        self.edit_preset(preset, float(fade_s))

    # -- time ------------------------------------------------------------------------------------
    def advance(self, frame: FeatureFrame) -> ShowState:
        """Advance by the audio time since the previous hop (events due before this hop were
        applied already, see ``show/events.py``). Returns the new state."""
        dt_s = max(frame.sample_index - self.sample_index, 0) / self.sample_rate
        self._step(frame, dt_s)
        return self.state()

    def _step(self, frame: FeatureFrame, dt_s: float) -> None:
        self.sample_index = frame.sample_index
        self.heard_tempo_bpm = frame.tempo_bpm     # the analyzer's, whatever the show follows
        if self._blackout != (1.0 if self._blackout_on else 0.0):
            self._blackout = blackout_step(self._blackout, self._blackout_on, dt_s)
        request = self._running.advance(frame, dt_s)
        amount = 1.0
        if self._old is not None:
            self._fade_elapsed_s += dt_s
            amount = min(self._fade_elapsed_s / self._fade_s, 1.0) if self._fade_s > 0 else 1.0
            if amount >= 1.0:
                self._old = None
            else:
                request = crossfade(self._old.advance(frame, dt_s), request, amount)
        self._publish(request, amount)

    def _publish(self, request: LatentRequest, amount: float) -> None:
        scene = self._running
        values = scene.controls.values
        params = scene.controls.effect_params(list(scene.effect_names))
        own_fade = params.get(OUTPUT_FADE, 0.0)
        # the output effect's fade carries the blackout (on top of the preset's own fade)
        params[OUTPUT_FADE] = combined_fade(own_fade, self._blackout)
        live = ShowState(
            sample_index=self.sample_index,
            request=LatentRequest(
                sample_index=request.sample_index, w=_frozen(request.w),
                w_raw=_frozen(request.w_raw), truncation_psi=float(request.truncation_psi),
                noise_strength=float(request.noise_strength), noise_seed=int(request.noise_seed),
                keyframe=int(request.keyframe), bends=request.bends, mix=request.mix,
                layer=request.layer),
            effect_names=scene.effect_names,
            effect_refs=scene.effect_refs,
            effect_params=types.MappingProxyType(params),
            effects_enabled=types.MappingProxyType(dict(scene.controls.effects_enabled)),
            values=types.MappingProxyType(dict(values)),
            preset_name=scene.preset.name,
            crossfade=amount,
            blackout=self._blackout)
        self._live, self._live_fade = live, own_fade
        self._state = live if self._held is None else self._held_now()

    def _held_now(self) -> ShowState:
        """The held state, stamped with the clock now and under the blackout as it is now
        (the same request object: the generator is not asked for it again)."""
        held = self._held
        params = dict(held.effect_params)
        params[OUTPUT_FADE] = combined_fade(self._held_fade, self._blackout)
        return dataclasses.replace(held, sample_index=self.sample_index,
                                   effect_params=types.MappingProxyType(params),
                                   blackout=self._blackout, frozen=True)

    # -- output ----------------------------------------------------------------------------------
    def state(self) -> ShowState:
        return self._state


def preset_to_yaml(preset: Preset) -> str:
    """A validated preset as YAML that ``parse_preset`` reads back to an equal preset."""
    import yaml

    return yaml.safe_dump(preset.model_dump(mode="json", by_alias=True), sort_keys=False)
