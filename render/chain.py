"""The effect chain: generator frames -> GLSL effects (ping-pong framebuffers) -> sRGB canvas.

Usage (any moderngl context: a headless EGL one or a glfw window's)::

    chain = EffectChain.from_names(ctx, ["crossfade", "feedback", "flash", "color"],
                                   size=(1280, 720))
    chain.push_frame(gan_output)               # NCHW float in [-1, 1] or HWC uint8
    chain.set_params({"flash.amount": 0.4, "color.hue": 30.0})   # every display frame
    canvas = chain.render(time_s=t)            # moderngl.Framebuffer, sRGB bytes, top row first
    pixels = chain.read()                      # (H, W, 3) uint8 numpy

Passes: a source pass fits the newest generator frame onto the canvas (letterbox / crop /
stretch, chosen filter, decoded to linear light), then each effect reads the previous result and
writes the other of two half-float textures; an effect that reads ``u_history`` (feedback) owns
its own pair so it can see last frame's output. The ``output`` effect always runs last and
writes 8-bit sRGB into the canvas, which the window presents and video files record.

An effect can be switched off and on while the show runs (``set_enabled``): a switched-off pass
is skipped in the ping-pong, so the picture is as if it were not in the chain, yet nothing is
recompiled and every other effect keeps its state (feedback trails go on). A preset entry with
``enabled: false`` is compiled too, so switching it on later costs nothing either. The
``output`` pass cannot be switched off.

Parameter values persist across frames; ``set_params`` only records them (clamped to the
declared range, NaN ignored) and ``render`` sends the changed ones to the GPU, so calling it every
display frame from the control loop is cheap.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.render.effects import (EffectSpec, Param, is_effect_path, read_internal_shader,
                                      resolve_effect)
from phosphene.render.upload import FrameUploader

log = logging.getLogger(__name__)

FITS = ("letterbox", "crop", "stretch")
FILTER_CODES = {"nearest": 0, "linear": 1, "bicubic": 2}

# Texture units, fixed for every program.
UNIT_SOURCE, UNIT_HISTORY, UNIT_FRAME, UNIT_FRAME_PREV = 0, 1, 2, 3

# A chain entry: "flash", "kick=transform", "/path/to/mine.glsl", a preset's effect entry
# {"name": "transform", "params": {"zoom": 1.1}, "enabled": True}, or with a second name to
# address it by {"effect": "transform", "as": "kick", "params": {...}}.
ChainEntry = Union[str, Mapping[str, Any]]


@dataclass
class _Entry:
    ref: str          # built-in name or file path
    alias: str        # the "<effect>" in "<effect>.<param>"
    initial: dict[str, float]
    enabled: bool = True   # switched by set_enabled; kept across a shader reload


class _Slot:
    """One parameter's current value and the uniform it drives."""

    __slots__ = ("param", "uniform", "value", "dirty")

    def __init__(self, param: Param, uniform: Any) -> None:
        self.param = param
        self.uniform = uniform
        self.value = param.default
        self.dirty = True


class _Stage:
    def __init__(self, entry: _Entry, spec: EffectSpec, program: Any, vao: Any) -> None:
        self.entry = entry
        self.spec = spec
        self.program = program
        self.vao = vao
        self.targets: list[Any] = []   # own framebuffer pair (history effects only)
        self.history = 0               # index into targets of last frame's output

    def release(self) -> None:
        self.vao.release()
        self.program.release()
        for fbo in self.targets:
            _release_target(fbo)
        self.targets = []


def _release_target(fbo: Any) -> None:
    """A framebuffer made by ``EffectChain._target`` and its texture. Releasing a moderngl
    framebuffer leaves its attachments alive, and an object never released stays allocated in
    the driver (8 MB per 1024x1024 half-float texture): a preset switch that rebuilt a chain
    with a trail effect leaked its two history textures."""
    for tex in fbo.color_attachments:
        tex.release()
    fbo.release()


def _default_alias(ref: str) -> str:
    """A built-in is addressed by its name; a user file by the name its header declares."""
    return resolve_effect(ref).name if is_effect_path(ref) else ref


def _parse_entry(item: ChainEntry) -> _Entry:
    """One chain entry -> _Entry (an ``enabled: false`` entry is built, switched off)."""
    if hasattr(item, "model_dump"):  # a preset's EffectModel
        item = item.model_dump()
    if isinstance(item, str):
        alias, sep, ref = item.partition("=")
        if not sep or is_effect_path(alias):  # no "name=" prefix (a path may contain "=")
            alias, ref = "", item
        ref = ref.strip()
        return _Entry(ref, alias.strip() or _default_alias(ref), {})
    if isinstance(item, Mapping):
        # preset form {name: <effect or path>, params, enabled}; or {effect: ..., as: <alias>}
        ref = item.get("effect", item.get("name"))
        if not isinstance(ref, str) or not ref:
            raise PhospheneError(f"chain entry {dict(item)!r} needs 'name: <effect or path>'")
        alias = item.get("as") or (item.get("name") if "effect" in item else None)
        params = item.get("params") or {}
        if not isinstance(params, Mapping):
            raise PhospheneError(f"chain entry {ref!r}: 'params' must be a mapping")
        return _Entry(ref, str(alias or _default_alias(ref)),
                      {str(k): float(v) for k, v in params.items()},
                      enabled=bool(item.get("enabled", True)))
    raise PhospheneError(f"chain entry must be a name, a path or a mapping, got {item!r}")


# Compiler diagnostics name a line of the effect file (the prelude ends with "#line 1"): Mesa
# writes "0:6(33): error: ...", NVIDIA "0(6) : error C1008: ...". Rewritten as "file:6:33: ...".
_MESA_LOCATION = re.compile(r"^\s*\d+:(\d+)\((\d+)\):\s*", re.MULTILINE)
_NVIDIA_LOCATION = re.compile(r"^\s*\d+\((\d+)\)\s*:\s*", re.MULTILINE)


def _compiler_message(raw: str, what: str) -> str:
    lines = [ln for ln in raw.splitlines()
             if ln.strip() and ln.strip() not in ("GLSL Compiler failed", "fragment_shader")
             and set(ln.strip()) != {"="}]
    text = "\n".join(lines)
    text = _MESA_LOCATION.sub(lambda m: f"{what}:{m.group(1)}:{m.group(2)}: ", text)
    text = _NVIDIA_LOCATION.sub(lambda m: f"{what}:{m.group(1)}: ", text)
    return text


def _compile(ctx: Any, vertex: str, fragment: str, what: str) -> Any:
    import moderngl

    try:
        return ctx.program(vertex_shader=vertex, fragment_shader=fragment)
    except moderngl.Error as exc:
        raise PhospheneError(f"{what}: GLSL compile error:\n"
                             f"{_compiler_message(str(exc), what)}") from None


class EffectChain:
    """An ordered list of effects drawn into a canvas of ``size`` = (width, height) pixels."""

    def __init__(self, ctx: Any, entries: Sequence[ChainEntry], size: tuple[int, int],
                 fit: str = "letterbox", filter: str = "linear") -> None:
        if fit not in FITS:
            raise PhospheneError(f"unknown fit {fit!r}; choose from {', '.join(FITS)}")
        self.ctx = ctx
        self.fit = fit
        self.frames = FrameUploader(ctx, filter=filter)
        self._entries = [_parse_entry(e) for e in entries]
        if not any(e.ref == "output" for e in self._entries):
            self._entries.append(_Entry("output", "output", {}))
        self._validate_entries(self._entries)
        self._vertex = read_internal_shader("vertex")
        self._stages: list[_Stage] = []
        self._slots: dict[str, _Slot] = {}
        self._ping: list[Any] = []
        self._canvas = None
        self.size = (0, 0)
        self._source_prog = _compile(ctx, self._vertex, self._fragment(read_internal_shader(
            "source")), "internal source pass")
        self._source_vao = ctx.vertex_array(self._source_prog, [])
        self._init_program(self._source_prog)
        self._stages = self._build_stages(self._entries)
        self._rebuild_slots(previous={})
        for entry in self._entries:
            self.set_params({f"{entry.alias}.{k}": v for k, v in entry.initial.items()})
        self.resize(*size)
        self._mtimes = self._shader_mtimes()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_names(cls, ctx: Any, entries: Sequence[ChainEntry], size: tuple[int, int] = (1280, 720),
                   **kwargs: Any) -> "EffectChain":
        """A chain from effect names, user shader paths, or preset-style mappings."""
        return cls(ctx, entries, size, **kwargs)

    @staticmethod
    def _validate_entries(entries: list[_Entry]) -> None:
        seen: set[str] = set()
        for e in entries:
            if e.alias in seen:
                raise PhospheneError(f"effect {e.alias!r} appears twice in the chain; give the "
                                     f"second a name, e.g. '{e.alias}2={e.ref}'")
            seen.add(e.alias)
        outputs = [i for i, e in enumerate(entries) if e.ref == "output"]
        if outputs != [len(entries) - 1]:
            raise PhospheneError("the 'output' effect must appear once, at the end of the chain")
        entries[-1].enabled = True  # the sRGB output pass is what fills the canvas: always on

    def _fragment(self, body: str) -> str:
        version, _, prelude = read_internal_shader("prelude").partition("\n")
        defines = (f"#define PHOSPHENE_FIT {FITS.index(self.fit)}\n"
                   f"#define PHOSPHENE_FILTER {FILTER_CODES[self.frames.filter]}\n")
        return f"{version}\n{defines}{prelude}\n#line 1\n{body}"

    def _init_program(self, prog: Any) -> None:
        for name, unit in (("u_source", UNIT_SOURCE), ("u_history", UNIT_HISTORY),
                           ("u_frame", UNIT_FRAME), ("u_frame_prev", UNIT_FRAME_PREV)):
            if name in prog:
                prog[name].value = unit

    def _build_stages(self, entries: list[_Entry]) -> list[_Stage]:
        """Compile every effect; all or nothing (releases what it made on failure)."""
        stages: list[_Stage] = []
        try:
            for entry in entries:
                spec = resolve_effect(entry.ref)
                for key in entry.initial:
                    spec.param(key)  # unknown initial parameter -> error naming the effect
                prog = _compile(self.ctx, self._vertex, self._fragment(spec.source),
                                str(spec.path))
                self._init_program(prog)
                stages.append(_Stage(entry, spec, prog, self.ctx.vertex_array(prog, [])))
        except BaseException:
            for stage in stages:
                stage.release()
            raise
        if self.size != (0, 0):
            for stage in stages:
                self._allocate_history(stage)
        return stages

    def _rebuild_slots(self, previous: Mapping[str, float]) -> None:
        slots: dict[str, _Slot] = {}
        for stage in self._stages:
            for p in stage.spec.params:
                key = f"{stage.entry.alias}.{p.name}"
                uniform = stage.program[p.name] if p.name in stage.program else None
                slot = _Slot(p, uniform)
                if key in previous:
                    slot.value = p.clamp(previous[key])
                slots[key] = slot
        self._slots = slots

    def _target(self, components: int = 4, dtype: str = "f2") -> Any:
        import moderngl

        tex = self.ctx.texture(self.size, components, dtype=dtype)
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        return self.ctx.framebuffer(color_attachments=[tex])

    def _allocate_history(self, stage: _Stage) -> None:
        for fbo in stage.targets:
            _release_target(fbo)
        stage.targets = []
        if stage.spec.uses_history:
            stage.targets = [self._target(), self._target()]
            for fbo in stage.targets:
                fbo.clear(0.0, 0.0, 0.0, 1.0)

    def resize(self, width: int, height: int) -> None:
        """Change the canvas size (reallocates the framebuffers; clears trails)."""
        if width < 1 or height < 1:
            raise PhospheneError(f"canvas size must be positive, got {width}x{height}")
        self.size = (int(width), int(height))
        for fbo in self._ping + ([self._canvas] if self._canvas else []):
            _release_target(fbo)
        self._ping = [self._target(), self._target()]
        self._canvas = self._target(dtype="f1")
        for stage in self._stages:
            self._allocate_history(stage)

    # -- parameters ---------------------------------------------------------------------------

    def set_params(self, params: Mapping[str, float]) -> None:
        """Set parameters by "<effect>.<param>" name. Values are clamped to the declared range;
        NaN is ignored (the last value stays). An unknown name raises PhospheneError listing the
        names this chain has (validate a preset's mapping once with ``check_param_names``)."""
        slots = self._slots
        for key, value in params.items():
            slot = slots.get(key)
            if slot is None:
                self.check_param_names([key])
            value = float(value)
            if value != value:  # NaN from a broken mapping must not reach the picture
                continue
            value = slot.param.clamp(value)
            if value != slot.value:
                slot.value = value
                slot.dirty = True

    def check_param_names(self, names: Iterable[str]) -> None:
        unknown = [n for n in names if n not in self._slots]
        if unknown:
            raise PhospheneError(f"unknown effect parameter {unknown[0]!r}; this chain has: "
                                 f"{', '.join(self._slots)}")

    def get_params(self) -> dict[str, float]:
        return {key: slot.value for key, slot in self._slots.items()}

    def params(self) -> dict[str, Param]:
        """Every parameter of the chain by "<effect>.<param>" name, with range and default."""
        return {key: slot.param for key, slot in self._slots.items()}

    def reset_params(self) -> None:
        for slot in self._slots.values():
            slot.value, slot.dirty = slot.param.default, True

    @property
    def effect_names(self) -> list[str]:
        """Every effect of the chain, switched on or not, in order."""
        return [stage.entry.alias for stage in self._stages]

    # -- switching effects on and off ---------------------------------------------------------

    def _stage(self, name: str) -> _Stage:
        for stage in self._stages:
            if stage.entry.alias == name:
                return stage
        raise PhospheneError(f"unknown effect {name!r}; this chain has: "
                             f"{', '.join(self.effect_names)}")

    def is_enabled(self, name: str) -> bool:
        return self._stage(name).entry.enabled

    @property
    def enabled(self) -> dict[str, bool]:
        """Effect name -> whether its pass runs."""
        return {stage.entry.alias: stage.entry.enabled for stage in self._stages}

    def set_enabled(self, name: str, on: bool) -> bool:
        """Switch one effect's pass on or off from the next ``render`` (no recompile, no
        reallocation; the other effects' trails carry on). Returns True when it changed.

        A trail effect switched back on starts from a black history: its old trail froze
        when it was switched off, and would flash back in as a stale ghost."""
        stage = self._stage(name)
        on = bool(on)
        if stage.entry.enabled == on:
            return False
        if stage is self._stages[-1] and not on:
            raise PhospheneError(f"the {name!r} effect writes the canvas and cannot be switched "
                                 "off (set its parameters instead)")
        stage.entry.enabled = on
        if on:
            for fbo in stage.targets:
                fbo.clear(0.0, 0.0, 0.0, 1.0)
        return True

    # -- frames and rendering -----------------------------------------------------------------

    def push_frame(self, frame: Any) -> None:
        """A new generator frame (torch/numpy NCHW float in [-1, 1], or HWC uint8)."""
        self.frames.push(frame)

    @property
    def canvas(self) -> Any:
        """The framebuffer holding the last rendered picture (RGBA8 sRGB, top row first)."""
        return self._canvas

    def _set_common(self, prog: Any, time_s: float) -> None:
        fw, fh = self.frames.size
        values = (("u_resolution", (float(self.size[0]), float(self.size[1]))),
                  ("u_frame_size", (float(max(fw, 1)), float(max(fh, 1)))),
                  ("u_time", float(time_s)))
        for name, value in values:
            if name in prog:
                prog[name].value = value

    def render(self, time_s: float = 0.0) -> Any:
        """Draw one display frame; returns the canvas framebuffer."""
        import moderngl

        if self.frames.newest is None:
            self._canvas.clear(0.0, 0.0, 0.0, 1.0)
            return self._canvas
        for slot in self._slots.values():
            if slot.dirty:
                if slot.uniform is not None:
                    slot.uniform.value = slot.value
                slot.dirty = False
        ctx = self.ctx
        ctx.disable(moderngl.BLEND | moderngl.DEPTH_TEST)
        self.frames.newest.use(UNIT_FRAME)
        self.frames.previous.use(UNIT_FRAME_PREV)

        current = self._ping[0]
        current.use()
        self._set_common(self._source_prog, time_s)
        self._source_vao.render(moderngl.TRIANGLES, vertices=3)
        for stage in self._stages:
            last = stage is self._stages[-1]
            if not (last or stage.entry.enabled):
                continue            # switched off: the identity, by passing the picture on
            if last:
                dst = self._canvas
            elif stage.targets:
                stage.targets[stage.history].color_attachments[0].use(UNIT_HISTORY)
                stage.history = 1 - stage.history
                dst = stage.targets[stage.history]
            else:
                dst = self._ping[1] if current is self._ping[0] else self._ping[0]
            current.color_attachments[0].use(UNIT_SOURCE)
            dst.use()
            self._set_common(stage.program, time_s)
            stage.vao.render(moderngl.TRIANGLES, vertices=3)
            current = dst
        return self._canvas

    def read(self, components: int = 3) -> np.ndarray:
        """The canvas as an (H, W, components) uint8 array, top row first (synchronous)."""
        w, h = self.size
        data = self._canvas.read(components=components, alignment=1)
        return np.frombuffer(data, np.uint8).reshape(h, w, components)

    # -- live editing -------------------------------------------------------------------------

    def shader_paths(self) -> list[Path]:
        return [stage.spec.path for stage in self._stages]

    def _shader_mtimes(self) -> dict[Path, int | None]:
        mtimes: dict[Path, int | None] = {}
        for path in self.shader_paths():
            try:
                mtimes[path] = path.stat().st_mtime_ns
            except OSError:
                mtimes[path] = None
        return mtimes

    def reload(self) -> None:
        """Re-read and recompile every effect file (after editing a shader). On any error the
        running chain is kept unchanged and PhospheneError (file name + compiler message) is
        raised for the caller to log; parameter values carry over by name."""
        previous = self.get_params()
        new_stages = self._build_stages(self._entries)
        old_stages, self._stages = self._stages, new_stages
        for stage in old_stages:
            stage.release()
        self._rebuild_slots(previous)

    def reload_if_changed(self) -> bool:
        """Hot reload for the live loop: recompiles when a shader file's modification time
        changed. Logs (never raises) a broken shader and keeps the last good chain. Returns True
        when a new chain is running."""
        mtimes = self._shader_mtimes()
        if mtimes == self._mtimes:
            return False
        self._mtimes = mtimes
        try:
            self.reload()
        except PhospheneError as exc:
            log.error("shader reload failed, keeping the running chain: %s", exc)
            return False
        log.info("effect chain reloaded")
        return True

    def release(self) -> None:
        for stage in self._stages:
            stage.release()
        self._stages = []
        for fbo in self._ping + ([self._canvas] if self._canvas else []):
            _release_target(fbo)
        self._ping, self._canvas = [], None
        self._source_vao.release()
        self._source_prog.release()
        self.frames.release()
