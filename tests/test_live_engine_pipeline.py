"""The live engine on the shared pipeline: a shader saved during a running show shows up on
screen (a broken save keeps the last good chain and the show goes on), and ``--compile`` /
a preset's ``generator.compile`` puts the compiled live synthesis in the generator's place."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from live_engine_helpers import EngineRun, tiny_generator
from phosphene.live.runtime.engine import EngineOptions

SR = 48000

TINT = """\
// effect: tint
// Multiplies by a colour.
// param amount 0 1 1  how much
uniform float amount;
void main() {
    vec3 c = texture(u_source, v_uv).rgb;
    f_color = vec4(c * mix(vec3(1.0), vec3(%s), amount), 1.0);
}
"""

PRESET = """\
name: tinted
output: {width: 32, height: 32, fps: 30}
keyframes: [{seed: 1}]
effects:
  - {name: SHADER}
"""


def silence(path, seconds: float):
    import soundfile as sf

    sf.write(path, np.zeros(int(seconds * SR), np.float32), SR)
    return path


def save(path, text: str) -> None:
    path.write_text(text)
    stamp = time.time_ns() + 1_000_000_000          # a distinct stamp, as a later save has
    os.utime(path, ns=(stamp, stamp))


def wait_for(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def green(run) -> float:
    return float(run.observed.frames[-1].pixels[..., 1].astype(np.float32).mean())


def test_a_shader_saved_during_the_show_reaches_the_screen(tmp_path):
    shader = tmp_path / "tint.glsl"
    save(shader, TINT % "1.0, 1.0, 1.0")
    preset = tmp_path / "tinted.yaml"
    preset.write_text(PRESET.replace("SHADER", str(shader)))
    options = EngineOptions(preset=str(preset), audio_file=silence(tmp_path / "s.wav", 30.0),
                            output="none", headless=True, osc_port=None, duration_s=30.0)
    with EngineRun(options, generator=tiny_generator(), pixels=True) as run:
        before = green(run)
        assert before > 50                    # the generator's picture has green in it
        save(shader, TINT % "1.0, 0.0, 1.0")  # ... which the saved shader takes out
        assert wait_for(lambda: green(run) < 5.0), (before, green(run))
        tinted = green(run)
        shown = len(run.observed.frames)
        save(shader, (TINT % "1.0, 1.0, 1.0").replace("amount;", "amount"))     # broken
        time.sleep(1.5)                       # several polls of the shader file
        assert len(run.observed.frames) > shown + 10          # the show goes on ...
        assert abs(green(run) - tinted) < 2.0                 # ... with the last good shader
        run.engine.stop()
        report = run.wait()
    assert report["errors"] == []


def test_compile_asked_for_runs_the_live_synthesis_and_says_how(tmp_path, monkeypatch):
    """Where the compile fails the engine runs eager and says why. Here the machine's C++
    compiler is broken (``CXX`` names one that is not there), so the build process fails for
    real, after tracing; the successful compile is checked in test_live_compile."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    monkeypatch.setenv("PHOSPHENE_CACHE_DIR", str(tmp_path / "cache"))   # nothing prebuilt
    monkeypatch.delenv("PHOSPHENE_COMPILE", raising=False)   # the suite's off would win
    preset = tmp_path / "tinted.yaml"
    preset.write_text(PRESET.replace("SHADER", str(tmp_path / "tint.glsl"))
                      .replace("keyframes:", "generator: {compile: true}\nkeyframes:"))
    save(tmp_path / "tint.glsl", TINT % "1.0, 1.0, 1.0")
    # long enough for the build process to trace the network at low priority first
    options = EngineOptions(preset=str(preset), audio_file=silence(tmp_path / "s.wav", 240.0),
                            output="none", headless=True, osc_port=None)
    with EngineRun(options, generator=tiny_generator()) as run:
        assert run.engine.synthesis_compile is not None     # the preset asked
        assert run.engine.synthesis_compile.wait(230)      # in the background, show running
        assert not run.engine.stopping
        run.engine.stop()
        report = run.wait()
    synthesis = report["frames"]["synthesis"]
    assert synthesis["compiled"] is False and synthesis["state"] == "eager"
    assert "the compile process failed" in synthesis["reason"], synthesis["reason"]
    assert "no-such-g++" in synthesis["reason"]     # the compiler's error, from the build log
    assert report["frames"]["generated"] > 0 and report["frames"]["generator_errors"] == 0


def test_without_compile_the_report_says_so(tmp_path):
    preset = tmp_path / "tinted.yaml"
    preset.write_text(PRESET.replace("SHADER", str(tmp_path / "tint.glsl")))
    save(tmp_path / "tint.glsl", TINT % "1.0, 1.0, 1.0")
    options = EngineOptions(preset=str(preset), audio_file=silence(tmp_path / "s.wav", 1.0),
                            output="none", headless=True, osc_port=None)
    with EngineRun(options, generator=tiny_generator()) as run:
        report = run.wait()
    synthesis = report["frames"]["synthesis"]
    assert synthesis["compiled"] is False and synthesis["reason"].startswith("not asked for")
    assert "PHOSPHENE_COMPILE=off" in synthesis["reason"]     # the suite's setting, named
