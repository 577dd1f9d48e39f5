"""Memory stays flat across preset switches (issue 18): every OpenGL object of a replaced
effect chain is released, and a running engine switched 50 times between the shipped presets
ends with the GL objects it started with and about the memory it started with.

GL objects are counted by wrapping the creation methods of ``moderngl.Context``: an object
is live from its creation until its ``release()`` (moderngl frees nothing on garbage
collection by default, so one never released stays allocated in the driver for good).
"""

from __future__ import annotations

import gc
import importlib.resources
import re
import time
from pathlib import Path

import moderngl
import numpy as np
import pytest
import soundfile as sf

from live_engine_helpers import SR, EngineRun, oscsend, tiny_generator
from phosphene.live.runtime.engine import EngineOptions
from phosphene.live.runtime.soak import rss_mb
from phosphene.render.chain import EffectChain
from phosphene.render.context import create_headless_context

CREATORS = ("buffer", "texture", "texture_array", "texture3d", "texture_cube",
            "texture_cube_array", "depth_texture", "vertex_array", "simple_vertex_array",
            "program", "query", "scope", "simple_framebuffer", "framebuffer", "renderbuffer",
            "depth_renderbuffer", "compute_shader", "sampler", "external_texture")

# Canvas of the engine test: big enough for a leak to show in the resident memory (a leaked
# pair of trail textures is 4 MB here), small enough for llvmpipe to switch quickly.
CANVAS = (512, 512)
SWITCHES = 50
# Cycle through the shipped presets so that every switch rebuilds the chain (default and
# showcase have the same chain, notebook another one), ending on the preset it started with.
CYCLE = ("notebook", "showcase", "notebook", "default")
# Resident memory the 50 switches may add. Measured with this test on the 2-core VM (Mesa
# llvmpipe): before the fix +123 to +132 MB and 50 textures more (a trail effect's history
# textures were never released), after it -1 to +4 MB; the target is < 30 MB.
RSS_BOUND_MB = 30.0


class GLObjects:
    """Live moderngl objects, by kind, created since this was made (undone at the test's
    end by ``monkeypatch``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._objects: dict[int, tuple[object, str]] = {}
        for name in CREATORS:
            original = getattr(moderngl.Context, name, None)
            if original is not None:
                monkeypatch.setattr(moderngl.Context, name, self._wrap(original, name))

    def _wrap(self, original, kind: str):
        def create(ctx, *args, **kwargs):
            obj = original(ctx, *args, **kwargs)
            self._objects[id(obj)] = (obj, kind)   # held: a dropped object is still counted
            return obj
        return create

    def live(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key, (obj, kind) in list(self._objects.items()):
            if isinstance(getattr(obj, "mglo", None), moderngl.InvalidObject):
                del self._objects[key]            # released
            else:
                counts[kind] = counts.get(kind, 0) + 1
        return counts


def test_a_released_chain_leaves_no_gl_object(monkeypatch):
    """Trail effects own framebuffer pairs: their textures go with the chain, with a shader
    reload and with a resize (the framebuffer's release alone leaves its texture)."""
    ctx = create_headless_context()
    try:
        gl = GLObjects(monkeypatch)
        frame = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
        chain = EffectChain(ctx, ["crossfade", "feedback", "flash", "trail=feedback"], (64, 48))
        chain.push_frame(frame)
        chain.render(0.0)
        built = gl.live()
        # two trail effects: a framebuffer pair each, next to the ping-pong pair and canvas
        assert built["framebuffer"] == 7 and built["texture"] == 7 + 2   # + the frame pair
        chain.reload()
        chain.resize(80, 60)
        chain.render(0.1)
        assert gl.live() == built
        chain.release()
        assert gl.live() == {}
    finally:
        ctx.release()


def _shipped_presets_with_short_crossfades(folder: Path) -> Path:
    """The shipped presets (their effect chains, keyframes, modes), fading in 0.2 s."""
    folder.mkdir()
    shipped = importlib.resources.files("phosphene.presets")
    for name in ("default", "showcase", "notebook"):
        text = (shipped / f"{name}.yaml").read_text(encoding="utf-8")
        text = re.sub(r"(?m)^crossfade_ms:.*\n", "", text) + "crossfade_ms: 200\n"
        (folder / f"{name}.yaml").write_text(text)
    return folder / "default.yaml"


def _clicks_wav(path: Path, duration_s: float) -> Path:
    """A click every half second: onsets flash and reseed the noise as in a show."""
    x = np.zeros(int(duration_s * SR), np.float32)
    for start in range(SR // 2, len(x) - 48, SR // 2):
        x[start:start + 48] = 0.5
    sf.write(path, x, SR)
    return path


def _switch(run: EngineRun, name: str) -> None:
    """Load ``name`` and wait until its crossfade is over and its chain has drawn frames."""
    engine = run.engine
    oscsend(run.osc_port, "/phosphene/preset/load", "s", name)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        state = engine.state
        if state.preset_name == name and state.crossfade >= 1.0:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"preset {name} did not finish its crossfade: {engine.errors}")
    drawn = engine.frame_times.count
    while engine.frame_times.count < drawn + 3:   # frames drawn by the new chain
        assert time.monotonic() < deadline, "the display stopped drawing"
        time.sleep(0.02)
    run.observed.frames.clear()                   # the test's own record must not grow


def _settled_rss_mb() -> float:
    gc.collect()
    return rss_mb()


def test_fifty_preset_switches_leave_gl_objects_and_memory_where_they_were(tmp_path,
                                                                            monkeypatch):
    gl = GLObjects(monkeypatch)
    preset = _shipped_presets_with_short_crossfades(tmp_path / "presets")
    audio = _clicks_wav(tmp_path / "clicks.wav", duration_s=300.0)   # the test stops first
    # the display on a thread: GL objects are counted by wrapping moderngl in this process
    # (the display process runs the same ChainDriver)
    options = EngineOptions(preset=str(preset), headless=True, osc_port=0, output="none",
                            audio_file=audio, size=CANVAS, fps=30, display="thread")
    with EngineRun(options, generator=tiny_generator()) as run:
        for name in CYCLE:                        # warm up: every chain built once
            _switch(run, name)
        start_objects, start_rss = gl.live(), _settled_rss_mb()
        assert start_objects.get("texture", 0) > 0, "no GL object counted: wrapping failed"
        for i in range(SWITCHES):
            _switch(run, CYCLE[i % len(CYCLE)] if i < SWITCHES - 1 else "default")
        end_objects, end_rss = gl.live(), _settled_rss_mb()
        engine = run.engine
        assert engine.actions.switches == len(CYCLE) + SWITCHES
        assert engine.state.preset_name == "default"
        run.engine.stop()
        report = run.wait()
    assert end_objects == start_objects, "GL objects of replaced chains were not released"
    growth = end_rss - start_rss
    assert growth < RSS_BOUND_MB, (f"{SWITCHES} preset switches grew the resident memory by "
                                   f"{growth:.1f} MB (bound {RSS_BOUND_MB} MB)")
    assert report["errors"] == [], report["errors"]


def test_fifty_preset_switches_leave_the_display_process_where_it_was(tmp_path):
    """The same switches with the display in its own process (the default): the effect
    chain's GL memory lives there, so the two processes' memory is measured together."""
    preset = _shipped_presets_with_short_crossfades(tmp_path / "presets")
    audio = _clicks_wav(tmp_path / "clicks.wav", duration_s=300.0)
    options = EngineOptions(preset=str(preset), headless=True, osc_port=0, output="none",
                            audio_file=audio, size=CANVAS, fps=30)
    with EngineRun(options, generator=tiny_generator()) as run:
        engine = run.engine
        display_pid = engine.display_pid
        assert display_pid is not None and rss_mb(display_pid) > 0

        def show_rss() -> float:
            return _settled_rss_mb() + rss_mb(display_pid)

        for name in CYCLE:
            _switch(run, name)
        start_rss, start_display = show_rss(), rss_mb(display_pid)
        for i in range(SWITCHES):
            _switch(run, CYCLE[i % len(CYCLE)] if i < SWITCHES - 1 else "default")
        end_rss, end_display = show_rss(), rss_mb(display_pid)
        assert engine.display_pid == display_pid          # the same process throughout
        run.engine.stop()
        report = run.wait()
    growth = end_rss - start_rss
    assert growth < RSS_BOUND_MB, (f"{SWITCHES} preset switches grew the show's memory by "
                                   f"{growth:.1f} MB (display process {start_display:.0f} -> "
                                   f"{end_display:.0f} MB; bound {RSS_BOUND_MB} MB)")
    assert report["errors"] == [], report["errors"]
