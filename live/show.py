"""The show: the pure, deterministic core that decides what the picture looks like.

A ``Show`` is built from a validated preset and the generator's facts. It is driven by two
inputs, both stamped with the audio sample index:

* ``FeatureFrame``s from the analyzer, one per hop, through ``advance``;
* ``ControlEvent``s (OSC, MIDI, keys, a replayed recording), through ``apply_event`` — or,
  simpler and the rule both ``live`` and ``render`` use, passed to ``advance(frame, events)``.

``state()`` returns an immutable ``ShowState``: the latent request for the generator and the
effect-chain parameters for the renderer. The same preset, generator facts, frames and events
give the same states, which is what makes a recorded set re-render frame-exact.

**The event rule** (one clock for live and offline): the show's clock is ``sample_index``, the
end of the last hop it advanced by. An event stamped ``s`` is applied before the first hop that
ends *after* ``s``. Live, the engine stamps an incoming event with its clock (the last hop
processed) and drains the queue at the start of the next hop, so stamp ``s`` = "arrived after
the hop ending at ``s``": a replay applies it before exactly the same hop, whenever within the
hop it arrived. Offline, ``EventSchedule.due`` picks the same events out of a sorted log.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phosphene.live.controls import PREFIX, ControlEvent, Controls, apply_control_event
from phosphene.live.director import Director, LatentRequest, crossfade
from phosphene.live.features import FeatureFrame
from phosphene.live.keyframes import Mapper, resolve_keyframes
from phosphene.live.params import ParameterSet
from phosphene.live.presets import Preset

# Addresses the show leaves to its caller (the engine): they change what is loaded or played,
# not the picture's parameters. A preset switch comes back as ``switch_preset``.
CALLER_ADDRESSES = ("preset/", "clip/", "midi/", "status")
# The record of a preset switch the show performed: args (name, preset YAML, crossfade_s,
# base_dir for relative keyframe files or "").
PRESET_LOADED = PREFIX + "preset/loaded"


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
        from phosphene.live.keyframes import mapper_from_generator

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


class _Scene:
    """One preset's controls + director, built against one generator."""

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
        self.director = Director(keyframes, preset.scene_settings(), w_avg=facts.w_avg)
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
        self._scene = _Scene(preset, facts, self.sample_rate, self.base_dir)
        self._old: _Scene | None = None          # the scene being faded out
        self._fade_s = 0.0
        self._fade_elapsed_s = 0.0
        self.sample_index = 0
        # evaluate once at time 0 (silence, no time passing) so state() is valid immediately
        self._step(FeatureFrame.silent(0, self.sample_rate), 0.0)

    # -- what is loaded --------------------------------------------------------------------------
    @property
    def preset(self) -> Preset:
        return self._scene.preset

    @property
    def controls(self) -> Controls:
        return self._scene.controls

    @property
    def director(self) -> Director:
        return self._scene.director

    @property
    def effect_names(self) -> tuple[str, ...]:
        return self._scene.effect_names

    def switch_preset(self, preset: Preset, crossfade_s: float | None = None, *,
                      base_dir: str | Path | None = None) -> None:
        """Load another preset; its latents fade in over ``crossfade_s`` (default: the new
        preset's ``crossfade_ms``). Effects switch at once (the chain is the new preset's).
        Raises ``PhospheneError`` (e.g. a missing keyframe file) and keeps the running scene."""
        new = _Scene(preset, self.facts, self.sample_rate,
                     self.base_dir if base_dir is None else Path(base_dir))
        fade = preset.crossfade_ms / 1000.0 if crossfade_s is None else max(float(crossfade_s), 0.0)
        # first look of the new scene: evaluated now, without time passing
        new.advance(FeatureFrame.silent(self.sample_index, self.sample_rate), 0.0)
        self._old = self._scene if fade > 0.0 else None
        self._scene = new
        self._fade_s, self._fade_elapsed_s = fade, 0.0
        # the state shows the switch at once: the new chain, latents still the old scene's
        if self._old is not None and self._old.request is not None:
            self._publish(crossfade(self._old.request, new.request, 0.0), 0.0)
        else:
            self._publish(new.request, 1.0)
        if self.recorder is not None:
            folder = self.base_dir if base_dir is None else Path(base_dir)
            self._record(ControlEvent(0, PRESET_LOADED, (
                preset.name, preset_to_yaml(preset), fade,
                "" if folder is None else str(folder.resolve())), origin="preset"))

    def _record(self, event: ControlEvent) -> None:
        self.recorder.write_event(ControlEvent(self.sample_index, event.address,
                                               tuple(event.args), event.origin))

    # -- inputs ----------------------------------------------------------------------------------
    def apply_event(self, event: ControlEvent) -> bool:
        """Apply a parameter/mode/effect/tempo/keyframe event to the running scene; returns
        False for events that are the caller's (preset, clip, MIDI learn, status)."""
        if event.address == PRESET_LOADED:        # a replayed switch
            self._replay_switch(event)
            return True
        if is_caller_event(event):
            return False
        return apply_control_event(event, self._scene.controls, self._scene.director)

    def _replay_switch(self, event: ControlEvent) -> None:
        import yaml

        from phosphene.live.presets import parse_preset

        name, text, fade, folder = (list(event.args) + ["", "", None, ""])[:4]
        preset = parse_preset(yaml.safe_load(text), origin=f"recorded preset {name!r}")
        if not preset.name:
            preset = preset.model_copy(update={"name": str(name)})
        self.switch_preset(preset, None if fade is None else float(fade),
                           base_dir=Path(folder) if folder else None)

    def advance(self, frame: FeatureFrame, events: Iterable[ControlEvent] = ()) -> ShowState:
        """Apply ``events`` (those due before this hop, see the module doc), then advance
        by the audio time since the previous hop. Returns the new state."""
        for event in events:
            self.apply_event(event)
        dt_s = max(frame.sample_index - self.sample_index, 0) / self.sample_rate
        self._step(frame, dt_s)
        return self.state()

    def _step(self, frame: FeatureFrame, dt_s: float) -> None:
        self.sample_index = frame.sample_index
        request = self._scene.advance(frame, dt_s)
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
        scene = self._scene
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


def is_caller_event(event: ControlEvent) -> bool:
    """Preset, clip, MIDI-learn and status events: handled by the engine, not the show."""
    if not event.address.startswith(PREFIX):
        return False
    return event.address[len(PREFIX):].startswith(CALLER_ADDRESSES)


class EventSchedule:
    """A recorded event log, handed out hop by hop by the event rule (module doc): ``due(end)``
    returns, in order, the not yet returned events with ``sample_index < end`` (stamped before
    the hop ending at ``end`` finished)."""

    def __init__(self, events: Iterable[ControlEvent]):
        # stable sort: events with the same stamp keep the order they were received in
        self._events = sorted(events, key=lambda e: e.sample_index)
        self._next = 0

    def __len__(self) -> int:
        return len(self._events)

    def due(self, frame_end: int) -> list[ControlEvent]:
        start = stop = self._next
        while stop < len(self._events) and self._events[stop].sample_index < frame_end:
            stop += 1
        self._next = stop
        return self._events[start:stop]
