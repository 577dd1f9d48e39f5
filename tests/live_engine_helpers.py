"""Shared pieces of the live-engine tests: a tiny random generator, presets written to a
folder, click WAVs, and a headless engine run in a thread with every frame observed."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import synth_audio as S
from phosphene.live.runtime.display import PresentedFrame
from phosphene.live.runtime.engine import Engine, EngineOptions
from phosphene.models.stylegan2 import Generator, GeneratorConfig

SR = 48000
TIMEOUT_S = 60.0

STAGE_PRESET = """\
name: stage
output: {width: 48, height: 48, fps: 20}
keyframes: [{seed: 1}, {seed: 2}, {seed: 3}]
modes:
  volume-blend: {weight: 0.5}
  noise: {onset_amount: 0.5}
parameters:
  psi: {default: 0.7}
mappings:
  - {source: onset, target: flash.amount, gain: 0.6, release_ms: 150}
effects:
  - {name: flash}
midi:
  cc:
    - {control: 1, target: psi}
clips: {feed_analyzer: true, gain: 1.0}
"""

OTHER_PRESET = """\
name: other
output: {width: 48, height: 48, fps: 20}
keyframes: [{seed: 7}, {seed: 8}]
crossfade_ms: 300
parameters:
  psi: {default: 0.4}
mappings:
  - {source: onset, target: flash.amount, gain: 0.6, release_ms: 150}
effects:
  - {name: color, params: {hue: 30}}
  - {name: flash}
"""


def tiny_generator(seed: int = 0) -> Generator:
    """A small StyleGAN2 with random weights: real network code, fast on a CPU."""
    config = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=32, channel_base=128,
                             channel_max=32, mapping_layers=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = Generator(config).eval().requires_grad_(False)
    return G


def random_generator(config: GeneratorConfig, seed: int, *, noise_strength: float = 0.0,
                     bias_scale: float = 0.0) -> Generator:
    """A StyleGAN2 with random weights (the global RNG untouched), its noise strengths set to
    ``noise_strength`` (so noise seeds matter) and its biases jittered by ``bias_scale``
    (so they are not all zero)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = Generator(config).eval().requires_grad_(False)
        with torch.no_grad():
            for name, p in G.named_parameters():
                if name.endswith("bias") and bias_scale:
                    p.add_(torch.randn_like(p) * bias_scale)
                elif name.endswith("noise_strength") and noise_strength:
                    p.fill_(noise_strength)
    return G


def write_presets(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stage.yaml").write_text(STAGE_PRESET)
    (folder / "other.yaml").write_text(OTHER_PRESET)
    return folder / "stage.yaml"


def write_clicks(path: Path, times, duration_s: float, amp: float = 0.5) -> Path:
    x, _ = S.clicks(list(times), duration_s, amp=amp)
    sf.write(path, x, SR)
    return path


def mean_brightness(pixels: np.ndarray) -> float:
    return float(pixels.astype(np.float32).mean())


@dataclass
class Observed:
    frames: list[PresentedFrame] = field(default_factory=list)

    def __call__(self, frame: PresentedFrame) -> None:
        # keep what the assertions need, not every pixel buffer's identity
        self.frames.append(frame)


class EngineRun:
    """``Engine.run()`` on a thread (headless EGL works from any thread), observed."""

    def __init__(self, options: EngineOptions, *, generator=None, pixels: bool = False):
        self.observed = Observed()
        self.engine = Engine(options, generator=generator, on_frame=self.observed,
                             capture_pixels=pixels)
        self.report: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.report = self.engine.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def __enter__(self) -> "EngineRun":
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT_S
        while not self.engine.ready.is_set():
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"engine did not start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("engine did not present a frame in time")
            time.sleep(0.02)
        return self

    def wait(self, timeout: float = TIMEOUT_S) -> dict:
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.engine.stop()
            self.thread.join(10)
            raise AssertionError("engine run did not end in time")
        if self.error is not None:
            raise self.error
        return self.report

    def __exit__(self, *exc) -> None:
        if self.thread.is_alive():
            self.engine.stop()
            self.thread.join(10)

    @property
    def osc_port(self) -> int:
        return self.engine.osc_address[1]


def oscsend(port: int, address: str, types: str = "", *args) -> None:
    """Send one message with liblo's ``oscsend`` (an independent OSC implementation)."""
    assert shutil.which("oscsend"), "liblo-tools is not installed: run scripts/setup.sh --dev"
    cmd = ["oscsend", "127.0.0.1", str(port), address]
    if types:
        cmd += [types, *map(str, args)]
    subprocess.run(cmd, check=True, timeout=10)
