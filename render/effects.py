"""Effect definitions: a GLSL fragment shader file plus the parameters its header declares.

An effect file is a fragment shader body (no ``#version``; the shared prelude in
``shaders/_prelude.glsl`` supplies it, the common uniforms and helpers) that starts with a
header comment::

    // effect: flash
    // Free text describing the effect ...
    // param amount 0 1 0  light added to every channel
    // param invert 0 1 0  mix toward the negative picture

Each ``param`` line is ``name min max default  description`` and must match a
``uniform float <name>;`` in the body. Parameters are addressed from outside as
``"<effect>.<param>"`` (e.g. ``"flash.amount"``). Built-in effects live in ``shaders/``; a user
effect is any file in the same format, named by its path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from phosphene.errors import PhospheneError

SHADER_DIR = Path(str(resources.files("phosphene.render") / "shaders"))

# Effects the chain knows by name, in the order `phosphene effects` lists them (a sensible chain
# order too). Files starting with "_" in shaders/ are internal passes, not effects.
BUILTIN_ORDER = ("crossfade", "color", "flash", "transform", "feedback", "chroma", "mirror",
                 "vignette", "output")

_PARAM_LINE = re.compile(
    r"^//\s*param\s+(?P<name>[A-Za-z_]\w*)\s+(?P<lo>\S+)\s+(?P<hi>\S+)\s+(?P<default>\S+)"
    r"\s*(?P<doc>.*)$")
_EFFECT_LINE = re.compile(r"^//\s*effect:\s*(?P<name>[A-Za-z_][\w-]*)\s*$")


@dataclass(frozen=True)
class Param:
    """One uniform an effect exposes: its range and the value it starts at."""

    name: str
    minimum: float
    maximum: float
    default: float
    doc: str = ""

    def clamp(self, value: float) -> float:
        return min(max(float(value), self.minimum), self.maximum)


@dataclass(frozen=True)
class EffectSpec:
    """A parsed effect file: its name, description, parameters and GLSL body."""

    name: str
    doc: str
    params: tuple[Param, ...]
    source: str          # the file's text, compiled after the prelude
    path: Path

    @property
    def uses_history(self) -> bool:
        """Whether the effect reads its own previous output (needs a private framebuffer pair)."""
        return re.search(r"\bu_history\b", self.source) is not None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise PhospheneError(f"effect {self.name!r} has no parameter {name!r}; "
                             f"it has: {', '.join(p.name for p in self.params) or 'none'}")


def parse_effect(text: str, path: Path) -> EffectSpec:
    """Read an effect file's header. Errors name the file and line."""
    name = None
    doc_lines: list[str] = []
    params: list[Param] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("//"):
            break  # the header ends at the first line of code
        m = _EFFECT_LINE.match(line)
        if m:
            name = m.group("name")
            continue
        if re.match(r"^//\s*param\b", line):
            m = _PARAM_LINE.match(line)
            if not m:
                raise PhospheneError(f"{path}:{lineno}: a param line reads "
                                     "'// param NAME MIN MAX DEFAULT  description', got {line!r}")
            try:
                lo, hi, default = (float(m.group(k)) for k in ("lo", "hi", "default"))
            except ValueError:
                raise PhospheneError(f"{path}:{lineno}: MIN, MAX and DEFAULT must be numbers: "
                                     f"{line!r}") from None
            if not lo <= default <= hi:
                raise PhospheneError(f"{path}:{lineno}: default {default:g} of {m.group('name')!r}"
                                     f" is outside its range {lo:g}..{hi:g}")
            params.append(Param(m.group("name"), lo, hi, default, m.group("doc").strip()))
            continue
        doc_lines.append(line.lstrip("/").strip())
    if name is None:
        name = path.stem  # a user file may leave out the "effect:" line
    for p in params:
        if not re.search(rf"\buniform\s+float\s+{p.name}\s*;", text):
            raise PhospheneError(f"{path}: parameter {p.name!r} is declared in the header but the "
                                 f"shader has no 'uniform float {p.name};'")
    if re.search(r"^\s*#version", text, re.MULTILINE):
        raise PhospheneError(f"{path}: remove the '#version' line; phosphene prepends its own "
                             "prelude (#version 330 and the shared uniforms)")
    return EffectSpec(name, " ".join(doc_lines), tuple(params), text, path)


def load_effect_file(path: str | Path) -> EffectSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PhospheneError(f"cannot read effect shader {path}: {exc.strerror or exc}") from None
    return parse_effect(text, path)


def builtin_effect_path(name: str) -> Path:
    return SHADER_DIR / f"{name}.glsl"


def is_effect_path(ref: str) -> bool:
    """A chain entry that names a file rather than a built-in effect."""
    return ref.endswith(".glsl") or "/" in ref or "\\" in ref


def resolve_effect(ref: str) -> EffectSpec:
    """A built-in effect by name, or a user effect by file path."""
    if is_effect_path(ref):
        return load_effect_file(Path(ref).expanduser())
    if ref not in BUILTIN_ORDER:
        raise PhospheneError(f"unknown effect {ref!r}; built-in effects: "
                             f"{', '.join(BUILTIN_ORDER)} (or give a path to a .glsl file)")
    return load_effect_file(builtin_effect_path(ref))


def builtin_effects() -> list[EffectSpec]:
    return [resolve_effect(name) for name in BUILTIN_ORDER]


def read_internal_shader(name: str) -> str:
    """One of the internal passes (``_prelude``, ``_vertex``, ``_source``, ...)."""
    return (SHADER_DIR / f"_{name}.glsl").read_text(encoding="utf-8")


def crossfade_position(elapsed_s: float, generator_interval_s: float) -> float:
    """Value for ``crossfade.position``: how far the display has moved from the previous to the
    newest generator frame, ``elapsed_s`` after the newest arrived, when frames arrive every
    ``generator_interval_s`` seconds (0 -> previous frame, 1 -> newest)."""
    if generator_interval_s <= 0.0:
        return 1.0
    return min(max(elapsed_s / generator_interval_s, 0.0), 1.0)
