"""The latent modes' settings: one schema for a preset's ``modes:`` section and the director.

A preset file is validated against these models (unknown keys are errors, see ``presets.py``)
and the ``Director`` reads the very same objects, so adding a field to a mode is one edit here
(plus the director code that uses it). Keys are written as in preset files (``volume-blend``);
the Python names use underscores, and either spelling is accepted.

What each mode does is described in ``director.py``. Every mode's ``weight`` is the starting
value of its ``mode.<name>`` parameter (OSC, MIDI and mappings move it from there); the
director reads the parameter, not this field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, field_validator,
                      model_validator)

from phosphene.live.show.mappings import parse_source

CurveName = Literal["linear", "exp", "log"]
EasingName = Literal["linear", "cosine", "smoothstep"]


def _check_source(value: str) -> str:
    parse_source(value)          # raises ValueError naming what is allowed
    return value


SourceStr = Annotated[str, AfterValidator(_check_source)]


class _Settings(BaseModel):
    # frozen: a running director's settings never change under it (a preset reload builds a
    # new director)
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class VolumeBlendSettings(_Settings):
    weight: float = Field(0.0, ge=0.0, le=1.0)
    toward: int = 1                 # B = the keyframe this many steps after the current one
    source: SourceStr = "level"
    gain: float = 1.0
    offset: float = 0.0
    curve: CurveName = "linear"
    curve_k: float = Field(4.0, gt=0.0)
    attack_ms: float = Field(30.0, ge=0.0)
    release_ms: float = Field(300.0, ge=0.0)


class OnsetStepSettings(_Settings):
    weight: float = Field(0.0, ge=0.0, le=1.0)
    trigger: Literal["onset", "beat"] = "onset"
    every: int = Field(1, ge=1)     # step on every Nth trigger
    length: float = Field(1.0, ge=0.0)       # transition length ...
    unit: Literal["beats", "ms"] = "beats"   # ... in beats (tempo-locked) or milliseconds
    easing: EasingName = "cosine"
    step: int = 1                   # keyframes to advance per step (negative walks backwards)


class DriftSettings(_Settings):
    weight: float = Field(0.0, ge=0.0, le=1.0)
    period: float = Field(8.0, gt=0.0)       # time from one keyframe to the next ...
    unit: Literal["beats", "seconds"] = "beats"
    level_speed: float = Field(1.0, ge=0.0)  # speed multiplier = 1 + level_speed * level
    easing: EasingName = "linear"   # easing within each keyframe-to-keyframe segment


class LayerGroupSettings(_Settings):
    source: SourceStr
    keyframe: int = Field(ge=0)     # style-mix toward this keyframe (index, wraps around)
    # count ``keyframe`` from the home keyframe (1 = the next scene), so the mix travels with
    # the scene instead of pulling every scene toward the same keyframe
    relative: bool = False
    gain: float = 1.0
    curve: CurveName = "linear"
    attack_ms: float = Field(20.0, ge=0.0)
    release_ms: float = Field(250.0, ge=0.0)


LAYER_GROUPS = ("coarse", "middle", "fine")

# a group the preset leaves out: bass -> coarse rows, mids -> middle rows, highs -> fine rows
DEFAULT_LAYER_GROUPS: dict[str, LayerGroupSettings] = {
    "coarse": LayerGroupSettings(source="low", keyframe=1),
    "middle": LayerGroupSettings(source="mid", keyframe=2),
    "fine": LayerGroupSettings(source="high", keyframe=3),
}


class LayerSplitSettings(_Settings):
    weight: float = Field(0.0, ge=0.0, le=1.0)
    coarse: LayerGroupSettings | None = None
    middle: LayerGroupSettings | None = None
    fine: LayerGroupSettings | None = None

    @property
    def groups(self) -> dict[str, LayerGroupSettings]:
        """Every row group's settings (the default for a group left out), coarse to fine."""
        chosen = {name: getattr(self, name) for name in LAYER_GROUPS}
        return {name: DEFAULT_LAYER_GROUPS[name] if group is None else group
                for name, group in chosen.items()}


TravelTrigger = Literal["phrase", "section", "onset-density"]


class TravelSettings(_Settings):
    """The picture travels through the song: on to the next scene (keyframe, then fresh seeds)
    at phrase boundaries and section changes, toward a far latent in builds, onto a new scene
    at a drop, calmer in breaks (``director.py``)."""

    weight: float = Field(0.0, ge=0.0, le=1.0)
    # what moves the picture on: phrase boundaries (every ``bars`` bars, on the analyzer's
    # bar grid), section changes the analyzer hears, or onset density (the more onsets, the
    # faster the picture glides on; about one scene a phrase at ``density`` onsets a second)
    on: tuple[TravelTrigger, ...] = ("phrase", "section")
    bars: int = Field(8, ge=1, le=128)      # phrase length in bars (4 beats)
    length: float = Field(2.0, ge=0.0)      # transition to the next scene ...
    unit: Literal["beats", "bars", "ms"] = "beats"    # ... tempo-locked, or in milliseconds
    easing: EasingName = "cosine"
    glide: float = Field(0.8, ge=0.0, le=1.0)   # share of the way toward the scene after
    #                                             the next covered during a phrase, so the
    #                                             picture never stands still
    new_seeds: bool = True          # after the last keyframe, fresh seeds (else wrap around)
    seed_base: int = Field(1000, ge=0, lt=2 ** 32)   # the first fresh seed; then +1, +2, ...
    min_beats: float = Field(4.0, ge=0.0)   # no two steps closer (a section change right
    #                                         after a phrase boundary is one move)
    density: float = Field(4.0, gt=0.0)     # onsets/s that travel one scene a phrase
    build: float = Field(0.5, ge=0.0, le=1.0)   # how far a build pushes toward the far latent
    drop: bool = True               # a drop lands on a new scene at once ...
    drop_length: float = Field(0.5, ge=0.0)     # ... in this many beats
    calm: float = Field(0.6, ge=0.0, le=1.0)    # how much a break calms the picture

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data):
        # YAML 1.1 (PyYAML) reads an unquoted ``on:`` key as the boolean true
        if isinstance(data, dict) and True in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        # ``on: phrase`` or ``on: [phrase, section]``
        return (value,) if isinstance(value, str) else value

    @field_validator("on")
    @classmethod
    def _not_empty(cls, value):
        if not value:
            raise ValueError("name at least one trigger: phrase, section, onset-density")
        return value


class NoiseSettings(_Settings):
    onset_amount: float = Field(0.5, ge=0.0)  # added to noise strength by an onset ...
    decay_ms: float = Field(200.0, ge=0.0)    # ... decaying with this time constant
    reseed_on_onset: bool = True    # a new noise pattern on every onset (texture "kicks")


class ModeSettings(_Settings):
    """A preset's ``modes:`` section."""

    volume_blend: VolumeBlendSettings = Field(default_factory=VolumeBlendSettings,
                                              alias="volume-blend")
    onset_step: OnsetStepSettings = Field(default_factory=OnsetStepSettings, alias="onset-step")
    drift: DriftSettings = Field(default_factory=DriftSettings)
    layer_split: LayerSplitSettings = Field(default_factory=LayerSplitSettings,
                                            alias="layer-split")
    noise: NoiseSettings = Field(default_factory=NoiseSettings)
    travel: TravelSettings = Field(default_factory=TravelSettings)


class DirectorSettings(ModeSettings):
    """What a ``Director`` is built with: the modes, plus the preset's top-level
    ``transition_ms`` (the eased move for keyframe next/prev/goto controls)."""

    transition_ms: float = Field(600.0, ge=0.0)

    @classmethod
    def from_modes(cls, modes: ModeSettings, *, transition_ms: float) -> "DirectorSettings":
        return cls(**dict(modes), transition_ms=transition_ms)
