"""Presets: YAML files naming a model, keyframes, latent modes, mappings, effects and MIDI.

Validated with pydantic (unknown keys are errors). A mistake is reported as one
``PhospheneError`` naming the file, the key path (``mappings[2].curve``) and what is allowed.
``--preset NAME|PATH``: a NAME is a preset shipped in ``phosphene.presets``, anything with a
``/`` or ending in ``.yaml`` is a path. ``PresetWatcher`` reloads a preset when its file is saved.
"""

from __future__ import annotations

import logging
import os
import threading
import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phosphene.errors import PhospheneError
from phosphene.live.show.bending import BendModel, bend_parameter_specs
from phosphene.live.show.directions import DirectionsModel, direction_parameter_specs
from phosphene.live.show.layering import layer_parameter_specs
from phosphene.live.show.mixing import MixModel, mix_parameter_specs
from phosphene.live.show.keyframes import (ProjectedKeyframe, SavedKeyframe, SeedKeyframe,
                                            SlerpKeyframe)
from phosphene.live.show.mappings import Mapping
from phosphene.live.show.modes import CurveName, DirectorSettings, ModeSettings, SourceStr
from phosphene.live.control.routes import find_route, is_safe_name
from phosphene.live.show.params import BUILTIN_PARAMETERS, ParameterSpec
from phosphene.render.effects import resolve_effect  # effect metadata (GLSL text): no GL import

log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- keyframes -------------------------------------------------------------------------------
class SeedKeyframeModel(_Model):
    seed: int = Field(ge=0, lt=2 ** 32)


class SlerpKeyframeModel(_Model):
    slerp: tuple[int, int] = Field(description="two seeds; z is interpolated on the sphere")
    t: float = Field(0.5, ge=0.0, le=1.0)


class SavedKeyframeModel(_Model):
    w: str = Field(description=".npy file, [w_dim] or [num_ws, w_dim], or a keyframe library "
                   ".npz; relative to the preset")
    key: str | None = Field(None, min_length=1, description="the keyframe of a library .npz")


class ProjectKeyframeModel(_Model):
    project: str = Field(description="an image (relative to the preset): the keyframe is the "
                         "w whose frame resembles it, computed once and cached")
    steps: int = Field(500, ge=1, le=100_000)
    w_plus: bool = Field(False, description="one w per layer: closer to the image, less smooth "
                         "to animate")


KeyframeModel = Union[SeedKeyframeModel, SlerpKeyframeModel, SavedKeyframeModel,
                      ProjectKeyframeModel]


class LayerModel(_Model):
    """A second model of any architecture, run in lockstep and crossfaded in before the
    effects (``layering.py``)."""

    model: str = Field(min_length=1, description="the layer model (relative to the preset's "
                       "folder, or any model reference)")
    fade: float = Field(0.5, ge=0.0, le=1.0, description="the parameter layer.fade: 0 = the "
                        "preset's model only, 1 = the layer model only")
    keyframes: list[KeyframeModel] | None = Field(None, min_length=1, description="the layer's "
                                                   "own keyframes; default: the preset's")


# -- controls --------------------------------------------------------------------------------
class ParameterModel(_Model):
    min: float | None = None
    max: float | None = None
    default: float | None = None
    smoothing_ms: float | None = Field(None, ge=0.0)
    help: str = ""


class MappingModel(_Model):
    source: SourceStr
    target: str
    gain: float = 1.0
    offset: float = 0.0
    curve: CurveName = "linear"
    curve_k: float = Field(4.0, gt=0.0)
    attack_ms: float = Field(0.0, ge=0.0)
    release_ms: float = Field(0.0, ge=0.0)


class EffectModel(_Model):
    name: str
    enabled: bool = True
    params: dict[str, float] = Field(default_factory=dict)


class MidiCCModel(_Model):
    control: int = Field(ge=0, le=127)
    channel: int | None = Field(None, ge=0, le=15, description="0-15; omitted = any channel")
    target: str = Field(description="a parameter name")


class MidiNoteModel(_Model):
    note: int = Field(ge=0, le=127)
    channel: int | None = Field(None, ge=0, le=15)
    address: str = Field(description="an OSC address of the namespace, e.g. /phosphene/keyframe/next")
    args: list[Union[int, float, str]] = Field(default_factory=list)

    @field_validator("address")
    @classmethod
    def _known_address(cls, value: str) -> str:
        if find_route(value) is None:
            raise ValueError(f"{value!r} is not an address of the OSC namespace "
                             "(see `phosphene osc --list`)")
        return value


class MidiModel(_Model):
    cc: list[MidiCCModel] = Field(default_factory=list)
    notes: list[MidiNoteModel] = Field(default_factory=list)


class OutputModel(_Model):
    width: int = Field(1024, ge=16, le=8192)
    height: int = Field(1024, ge=16, le=8192)
    fps: float = Field(60.0, gt=0.0, le=240.0)


class NdiModel(_Model):
    # the final picture as an NDI source of this name (phosphene live; --ndi NAME overrides)
    name: str = Field(min_length=1)


class GeneratorModel(_Model):
    # the compiled live synthesis (torch.compile; CUDA graphs on a GPU): auto = on CUDA, and on
    # the CPU where a C++ compiler is present. Built in the background while the show runs
    # eager (seconds to a minute); stays eager where it cannot compile (live_compile.py)
    compile: Union[bool, Literal["auto"]] = "auto"


class ClipsModel(_Model):
    feed_analyzer: bool = True      # clips are mixed into the analyzer input
    gain: float = Field(1.0, ge=0.0, le=4.0)


class Preset(_Model):
    name: str = ""
    description: str = ""
    model: str = "builtin:abstract"
    output: OutputModel = Field(default_factory=OutputModel)
    generator: GeneratorModel = Field(default_factory=GeneratorModel)
    keyframes: list[KeyframeModel] = Field(min_length=1)
    transition_ms: float = Field(600.0, ge=0.0)
    crossfade_ms: float = Field(1500.0, ge=0.0, description="fade when switching to this preset")
    # preset switches, keyframe steps and clip starts wait for the next beat or bar (a message
    # may say otherwise: show/quantize.py), landing early by the lookahead: the measured time
    # from analysis to screen ("auto"), or a fixed number of milliseconds
    quantize: Literal["off", "beat", "bar"] = "off"
    quantize_lookahead_ms: Union[Annotated[float, Field(ge=0.0, le=2000.0)], Literal["auto"]] = "auto"
    modes: ModeSettings = Field(default_factory=ModeSettings)   # the schema is in modes.py
    parameters: dict[str, ParameterModel] = Field(default_factory=dict)
    mappings: list[MappingModel] = Field(default_factory=list)
    effects: list[EffectModel] = Field(default_factory=list)
    # feature-map operations inside the network (bending.py) and a second model blended in
    # per block (mixing.py): each numeric setting is a parameter (bend.0.angle, mix.fine)
    bend: list[BendModel] = Field(default_factory=list)
    mix: MixModel | None = None
    # meaningful directions in W (SeFa / GANSpace), each a parameter dir.k in sigma units
    # (directions.py); computed for the model when the preset loads, then cached
    directions: DirectionsModel | None = None
    # a second model of any architecture with its own director over its own latent space,
    # crossfaded in before the effect chain by the parameter layer.fade (layering.py)
    layer: LayerModel | None = None
    midi: MidiModel = Field(default_factory=MidiModel)
    clips: ClipsModel = Field(default_factory=ClipsModel)
    ndi: NdiModel | None = None
    # passed to the analyzer, which validates it against its own settings
    analyzer: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _targets_exist(self) -> "Preset":
        known = set(self.parameter_specs())
        for i, m in enumerate(self.mappings):
            if m.target not in known:
                raise ValueError(f"mappings[{i}].target: unknown parameter {m.target!r}; known: "
                                 f"{', '.join(sorted(known))}")
        for i, m in enumerate(self.midi.cc):
            if m.target not in known:
                raise ValueError(f"midi.cc[{i}].target: unknown parameter {m.target!r}; known: "
                                 f"{', '.join(sorted(known))}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _effects_exist(cls, data: Any) -> Any:
        # checked before the rest, so parameter_specs() can rely on every effect resolving
        effects = data.get("effects") if isinstance(data, dict) else None
        for i, e in enumerate(effects if isinstance(effects, list) else []):
            if not isinstance(e, dict) or not isinstance(e.get("name"), str):
                continue                  # the field validation reports the shape problem
            try:
                spec = _effect_spec(e["name"])
            except PhospheneError as exc:
                raise ValueError(f"effects[{i}].name: {exc}") from None
            params = e.get("params") or {}
            known = [p.name for p in spec.params]
            for key in params if isinstance(params, dict) else ():
                if key not in known:
                    raise ValueError(f"effects[{i}].params.{key}: effect {spec.name!r} has no "
                                     f"parameter {key!r}; allowed: {', '.join(known) or 'none'}")
        return data

    # -- conversion to the pure core ------------------------------------------------------------
    def parameter_specs(self) -> dict[str, ParameterSpec]:
        """Built-in parameters, effect parameters, then the preset's ``parameters`` overrides.
        Mode weights default to the preset's mode weights."""
        specs = {p.name: p for p in BUILTIN_PARAMETERS}
        for mode, model in (("volume-blend", self.modes.volume_blend), ("onset-step", self.modes.onset_step),
                            ("drift", self.modes.drift), ("layer-split", self.modes.layer_split),
                            ("travel", self.modes.travel)):
            old = specs[f"mode.{mode}"]
            specs[old.name] = ParameterSpec(old.name, 0.0, 1.0, model.weight, old.smoothing_ms, old.help)
        for effect in self.effects:
            spec = _effect_spec(effect.name)
            for p in spec.params:
                # every uniform of the chain is a parameter: range and default from the shader,
                # the preset's value as the starting point
                name = f"{spec.name}.{p.name}"
                start = p.clamp(effect.params.get(p.name, p.default))
                specs[name] = ParameterSpec(name, p.minimum, p.maximum, start,
                                            EFFECT_SMOOTHING_MS, p.doc)
        specs.update(bend_parameter_specs(self.bend))
        if self.mix is not None:
            specs.update(mix_parameter_specs(self.mix))
        if self.directions is not None:
            specs.update(direction_parameter_specs(self.directions))
        if self.layer is not None:
            specs.update(layer_parameter_specs(self.layer.fade, self.layer.model))
        for name, override in self.parameters.items():
            base = specs.get(name, ParameterSpec(name))
            lo = base.minimum if override.min is None else override.min
            hi = base.maximum if override.max is None else override.max
            default = base.default if override.default is None else override.default
            smoothing = base.smoothing_ms if override.smoothing_ms is None else override.smoothing_ms
            try:
                specs[name] = ParameterSpec(name, lo, hi, min(max(default, lo), hi) if override.default
                                            is None else default, smoothing, override.help or base.help)
            except ValueError as exc:
                raise ValueError(f"parameters.{name}: {exc}") from None
        return specs

    def keyframe_specs(self) -> list:
        return _keyframe_specs(self.keyframes)

    def layer_keyframe_specs(self) -> list:
        """The layer model's keyframes: its own, else the preset's (the same seeds, resolved
        through the layer model's mapping network)."""
        own = None if self.layer is None else self.layer.keyframes
        return _keyframe_specs(self.keyframes if own is None else own)

    def director_settings(self) -> DirectorSettings:
        """The ``Director``'s settings: the ``modes:`` section as written, plus
        ``transition_ms``."""
        return DirectorSettings.from_modes(self.modes, transition_ms=self.transition_ms)

    def core_mappings(self) -> list[Mapping]:
        return [Mapping(**m.model_dump()) for m in self.mappings]

    def effect_names(self) -> list[str]:
        """Names the effects are addressed by (``flash``; a user effect's declared name)."""
        return [_effect_spec(e.name).name for e in self.effects]


def _keyframe_specs(keyframes: list) -> list:
    """The core's keyframe specs (``keyframes.py``) of validated keyframe entries."""
    out = []
    for k in keyframes:
        if isinstance(k, SeedKeyframeModel):
            out.append(SeedKeyframe(k.seed))
        elif isinstance(k, SlerpKeyframeModel):
            out.append(SlerpKeyframe(k.slerp[0], k.slerp[1], k.t))
        elif isinstance(k, ProjectKeyframeModel):
            out.append(ProjectedKeyframe(k.project, k.steps, k.w_plus))
        else:
            out.append(SavedKeyframe(k.w, k.key))
    return out


# Short glide for effect uniforms set by OSC/MIDI: removes zipper steps, keeps them snappy.
# (Mappings add on top without this smoothing, so an onset flash is never delayed.)
EFFECT_SMOOTHING_MS = 20.0


def _effect_spec(ref: str):
    return resolve_effect(ref)


# -- loading ---------------------------------------------------------------------------------
def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that holds the key at ``loc`` (for listing allowed keys)."""
    model: Any = Preset
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            # a union tag (pydantic puts the member's name in the loc): pick that member
            return None
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    for _ in range(4):
        args = typing.get_args(annotation)
        if not args:
            return annotation
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
        annotation = args[-1] if typing.get_origin(annotation) is dict else args[0]
    return annotation


def _describe_error(err: dict) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.endswith("Model")))
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if not loc:              # whole-preset checks put the key path in the message
        return msg
    path = _format_loc(loc)
    if err["type"] == "extra_forbidden":
        model = _model_at(loc)
        if model is not None:
            allowed = [f.alias or n for n, f in model.model_fields.items()]
            msg = f"unknown key; allowed: {', '.join(allowed)}"
        else:
            msg = "unknown key"
    return f"{path}: {msg}"


def parse_preset(data: Any, *, origin: str = "<preset>") -> Preset:
    if not isinstance(data, dict):
        raise PhospheneError(f"{origin}: a preset must be a YAML mapping of keys, got "
                             f"{type(data).__name__}")
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # a keyframe that fits none of the union members produces one error per member;
        # keep the first per path so the message stays readable
        seen, lines = set(), []
        for err in errors:
            text = _describe_error(err)
            key = text.split(":", 1)[0]
            if key not in seen:
                seen.add(key)
                lines.append(text)
        raise PhospheneError(f"{origin}: " + "; ".join(lines[:5])) from None


def load_preset_file(path: str | Path) -> Preset:
    p = Path(path)
    return preset_from_text(read_preset_text(p), p)


def read_preset_text(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", newline="") as f:     # line endings as written
            return f.read()
    except FileNotFoundError:
        raise PhospheneError(f"preset file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PhospheneError(f"cannot read preset {path}: {exc}") from None


def preset_from_text(text: str, path: Path) -> Preset:
    """The preset in ``text``, read from ``path`` (named in errors; its stem is the name when
    the preset has none)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PhospheneError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    preset = parse_preset(data, origin=str(path))
    if not preset.name:
        preset = preset.model_copy(update={"name": path.stem})
    return preset


def shipped_presets() -> list[str]:
    root = resources.files("phosphene.presets")
    return sorted(entry.name[:-5] for entry in root.iterdir() if entry.name.endswith(".yaml"))


def resolve_preset(name_or_path: str) -> Path:
    """``--preset``: a path (contains a separator or ends in .yaml) or a shipped preset name."""
    if os.sep in name_or_path or "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        p = Path(name_or_path).expanduser()
        if not p.is_file():
            raise PhospheneError(f"preset file not found: {p}")
        return p
    if is_safe_name(name_or_path):
        entry = resources.files("phosphene.presets") / f"{name_or_path}.yaml"
        if entry.is_file():
            return Path(str(entry))
    raise PhospheneError(f"unknown preset {name_or_path!r}; shipped presets: "
                         f"{', '.join(shipped_presets())} (or give a path to a .yaml file)")


def load_preset(name_or_path: str) -> tuple[Preset, Path]:
    path = resolve_preset(name_or_path)
    return load_preset_file(path), path


# -- hot reload ------------------------------------------------------------------------------
class PresetWatcher:
    """Polls a preset file's modification stamp (no extra dependency); on a change, reloads.

    ``poll()`` returns the new ``Preset`` when a save validated, else None. A broken save keeps
    the old preset: ``error`` holds the message (logged once per save), the show goes on.

    phosphene's own saves (MIDI learn writing a binding) are not reloaded: the writer announces
    the text it is about to write (``expect_own_save``), and a change to exactly that text only
    moves the watcher's stamp on -- the running show already has what the save adds.
    """

    _OWN_SAVES_KEPT = 8

    def __init__(self, path: str | Path, preset: Preset | None = None):
        self.path = Path(path)
        self.preset = preset if preset is not None else load_preset_file(self.path)
        self.error: str | None = None
        self._stamp = self._read_stamp()
        self._own_saves: list[str] = []
        self._lock = threading.Lock()          # expect_own_save comes from the MIDI thread

    def expect_own_save(self, text: str) -> None:
        """phosphene is about to write ``text`` into the file (call it before writing, from
        any thread, so no poll can see the file first): that save is not a reload."""
        with self._lock:
            self._own_saves = self._own_saves[-(self._OWN_SAVES_KEPT - 1):] + [text]

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self) -> Preset | None:
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            text = read_preset_text(self.path)
            with self._lock:
                own = text in self._own_saves
            preset = preset_from_text(text, self.path)
        except PhospheneError as exc:
            self.error = str(exc)
            log.warning("preset not reloaded, keeping the running one: %s", exc)
            return None
        self.preset, self.error = preset, None
        if own:
            log.debug("preset %s saved by phosphene: nothing to reload", self.path)
            return None
        log.info("preset reloaded: %s", self.path)
        return preset
