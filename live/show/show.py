"""The show: the pure, deterministic core that decides what the picture looks like.

A ``Show`` is built from a validated preset and the generator's facts. It is driven by two
inputs, both stamped with the audio sample index:

* ``FeatureFrame``s from the analyzer, one per hop, through ``advance``;
* ``ControlEvent``s (OSC, MIDI, keys, a replayed recording), applied between hops by
  ``phosphene.live.control.routes.perform``: each route calls one of the show's operations
  (``set_parameter``, ``enable_effect``, ``tap_tempo``, ``goto_keyframe``, ...).

``state()`` returns an immutable ``ShowState``: the latent request for the generator and the
effect-chain parameters for the renderer. The same preset, generator facts, frames and events
give the same states, which is what makes a recorded set re-render frame-exact.

Events are applied by ``phosphene.live.control.routes`` (the one table of addresses), which
calls the operations below; ``show/events.py`` has the event rule both live and offline follow.

**Recording**: the engine writes the events it receives (``Recorder.write_event``); the show,
given the recorder (``Show(..., recorder=...)`` or ``show.recorder = ...``), writes what the
engine cannot: each preset switch, as ``/phosphene/preset/loaded`` with the full preset YAML,
stamped with the clock. A replay applies it at the same hop and never depends on the presets
folder (``/phosphene/preset/load NAME`` lines in the log are then only a record).

Nothing here imports torch or OpenGL; turning a state into pixels is ``FrameGenerator`` and the
effect chain's job.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.live.show.controls import Controls
from phosphene.live.show.director import Director, LatentRequest, crossfade
from phosphene.live.show.events import PRESET_LOADED, ControlEvent
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.show.keyframes import Mapper, resolve_keyframes
from phosphene.live.show.params import ParameterSet
from phosphene.live.show.presets import Preset



@dataclass(frozen=True)
class GeneratorFacts:
    """What the show needs to know about the generator (no torch in the core)."""

    z_dim: int
    w_dim: int
    num_ws: int
    mapper: Mapper                       # z [z_dim] -> w [num_ws, w_dim], untruncated
    w_avg: np.ndarray | None = None      # [w_dim], the truncation centre

    @classmethod
    def from_generator(cls, G, device=None) -> "GeneratorFacts":
        """Read the facts off a ``Generator`` (imports torch through the mapper only)."""
        from phosphene.live.show.keyframes import mapper_from_generator

        w_avg = getattr(getattr(G, "mapping", None), "w_avg", None)
        return cls(z_dim=int(G.z_dim), w_dim=int(G.w_dim), num_ws=int(G.num_ws),
                   mapper=mapper_from_generator(G, device),
                   w_avg=None if w_avg is None else w_avg.detach().float().cpu().numpy())


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
    a preset switch crossfades)."""

    def __init__(self, preset: Preset, facts: GeneratorFacts, sample_rate: int,
                 base_dir: Path | None):
        self.preset = preset
        self.effect_names = tuple(preset.effect_names())
        self.effect_refs = tuple(e.name for e in preset.effects)
        params = ParameterSet(list(preset.parameter_specs().values()))
        enabled = {name: e.enabled for name, e in zip(self.effect_names, preset.effects)}
        self.controls = Controls(params, preset.core_mappings(), sample_rate, enabled)
        keyframes = resolve_keyframes(preset.keyframe_specs(), mapper=facts.mapper,
                                      z_dim=facts.z_dim, num_ws=facts.num_ws, w_dim=facts.w_dim,
                                      base_dir=base_dir)
        self.director = Director(keyframes, preset.director_settings(), w_avg=facts.w_avg)
        self.request: LatentRequest | None = None

    def advance(self, frame: FeatureFrame, dt_s: float) -> LatentRequest:
        values = self.controls.update(frame, dt_s)
        self.request = self.director.update(values, frame, dt_s)
        return self.request


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

    # -- operations (what the routes of ``control/routes.py`` call) ------------------------------
    # A name that is not in the running scene is ignored: the sender validated it against the
    # scene it saw, and a preset switch may have happened since; the show goes on.
    def set_parameter(self, name: str, value: float, *, immediate: bool = False) -> None:
        params = self._running.controls.params
        if name in params:
            params.set(name, float(value), immediate=immediate)

    def enable_effect(self, effect: str, on: bool) -> None:
        self._running.controls.effects_enabled[effect] = bool(on)

    def tap_tempo(self, sample_index: int) -> None:
        """A tap at ``sample_index``; from the second tap on it sets ``tempo_bpm``."""
        bpm = self._running.controls.tap.tap(sample_index)
        if bpm is not None:
            self.set_parameter("tempo_bpm", bpm, immediate=True)

    def step_keyframe(self, delta: int) -> None:
        self._running.director.step(delta)

    def goto_keyframe(self, index: int) -> None:
        self._running.director.goto(int(index))

    def capture_keyframe(self) -> None:
        self._running.director.capture()

    def switch_to_recorded(self, name: str, text: str, fade_s: float | None = None,
                           folder: str = "") -> None:
        """Replay a recorded switch (``PRESET_LOADED``): the preset comes from its recorded
        YAML, never from the presets folder, so a replay does not depend on files changed
        since."""
        import yaml

        from phosphene.live.show.presets import parse_preset

        preset = parse_preset(yaml.safe_load(text), origin=f"recorded preset {name!r}")
        if not preset.name:
            preset = preset.model_copy(update={"name": str(name)})
        self.switch_preset(preset, None if fade_s is None else float(fade_s),
                           base_dir=Path(folder) if folder else None)

    # -- time ------------------------------------------------------------------------------------
    def advance(self, frame: FeatureFrame) -> ShowState:
        """Advance by the audio time since the previous hop (events due before this hop were
        applied already, see ``show/events.py``). Returns the new state."""
        dt_s = max(frame.sample_index - self.sample_index, 0) / self.sample_rate
        self._step(frame, dt_s)
        return self.state()

    def _step(self, frame: FeatureFrame, dt_s: float) -> None:
        self.sample_index = frame.sample_index
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
        self._state = ShowState(
            sample_index=self.sample_index,
            request=LatentRequest(
                sample_index=request.sample_index, w=_frozen(request.w),
                w_raw=_frozen(request.w_raw), truncation_psi=float(request.truncation_psi),
                noise_strength=float(request.noise_strength), noise_seed=int(request.noise_seed),
                keyframe=int(request.keyframe)),
            effect_names=scene.effect_names,
            effect_refs=scene.effect_refs,
            effect_params=types.MappingProxyType(scene.controls.effect_params(
                list(scene.effect_names))),
            effects_enabled=types.MappingProxyType(dict(scene.controls.effects_enabled)),
            values=types.MappingProxyType(dict(values)),
            preset_name=scene.preset.name,
            crossfade=amount)

    # -- output ----------------------------------------------------------------------------------
    def state(self) -> ShowState:
        return self._state


def preset_to_yaml(preset: Preset) -> str:
    """A validated preset as YAML that ``parse_preset`` reads back to an equal preset."""
    import yaml

    return yaml.safe_dump(preset.model_dump(mode="json", by_alias=True), sort_keys=False)
