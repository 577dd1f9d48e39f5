"""Real time under load: a display slowed down by a heavy effect leaves the audio and the analysis
in real time, because it draws in its own process. Real parts: the PulseAudio virtual mic with
music played into it (paplay), a headless engine on EGL (Mesa llvmpipe), an effect whose
shader samples its input hundreds of times per pixel."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import synth_audio as S
from live_engine_helpers import EngineRun, tiny_generator
from phosphene.live.runtime.engine import EngineOptions

SR = 48000

# A blur of 24x24 taps: ~600 texture reads a pixel, far beyond a display period on a CPU.
HEAVY = """\
// effect: heavy
// A deliberately slow blur (a test of the display's isolation).
// param radius 0 0.1 0.02  how far it reaches
uniform float radius;
void main() {
    vec3 sum = vec3(0.0);
    for (int i = 0; i < 24; i++) {
        for (int j = 0; j < 24; j++) {
            vec2 d = (vec2(float(i), float(j)) / 23.0 - 0.5) * radius;
            sum += texture(u_source, v_uv + d).rgb;
        }
    }
    f_color = vec4(sum / 576.0, 1.0);
}
"""

PRESET = """\
name: heavy
output: {width: 640, height: 640, fps: 60}
keyframes: [{seed: 1}, {seed: 2}]
mappings:
  - {source: onset, target: flash.amount, gain: 0.3, release_ms: 80}
effects:
  - {name: SHADER}
  - {name: flash}
"""


def music(path, seconds: float):
    beats = [0.25 * k for k in range(int(seconds * 4))]
    x, _ = S.clicks(beats, seconds, amp=0.4)
    t = np.arange(len(x)) / SR
    x = x + 0.1 * np.sin(2 * np.pi * 220.0 * t).astype(np.float32)
    sf.write(path, x.astype(np.float32), SR)
    return path


@pytest.fixture
def heavy_preset(tmp_path):
    shader = tmp_path / "heavy.glsl"
    shader.write_text(HEAVY)
    preset = tmp_path / "heavy.yaml"
    preset.write_text(PRESET.replace("SHADER", str(shader)))
    return preset


def test_a_slow_display_leaves_the_analysis_in_real_time(pulse, tmp_path, heavy_preset):
    player = pulse.play(music(tmp_path / "music.wav", 20.0))
    try:
        options = EngineOptions(preset=str(heavy_preset), input="pulse", output="none",
                                sample_rate=SR, headless=True, osc_port=None, duration_s=10.0)
        with EngineRun(options, generator=tiny_generator()) as run:
            report = run.wait()
    finally:
        player.terminate()
        player.wait(timeout=10)
    display, audio = report["display"], report["audio"]
    assert display["runs_in"] == "process"
    # the display really was slow: each frame took several display periods (60 fps asked)
    assert report["frames"]["frame_time_ms"]["p50"] > 3 * 1000 / 60, report["frames"]
    # ... and the audio was all there, analysed as it came
    assert audio["overflows"] == 0, audio
    assert audio["losses"] == 0
    assert audio["analysed_per_wall_s"] == pytest.approx(1.0, abs=0.03), audio
    assert audio["age"]["hops"] > 0.9 * 10.0 * SR / audio["hop_length"]
    assert audio["age"]["p50_ms"] < 50, audio["age"]
    assert report["onsets"]["detected"] >= 20             # the clicks were heard throughout
    assert report["frames"]["generated"] > 50             # the generator was not starved
    assert report["ended"] == {"reason": "the --duration was reached", "clean": True}
