"""``phosphene bench latency``: from a click in the audio to the first frame that shows it.

The engine runs headless on a click track released in real time (``--audio-file`` pacing, so
sample ``s`` of the file is "heard" at ``audio_started_at + s / sr``). For each click:

- **effects path**: the first presented frame drawn from a show state that contains the click's
  onset (the preset maps onsets to ``flash.amount``: that frame is brighter);
- **GAN path**: the first presented frame whose generator picture was made from a latent
  request at or after the onset (the director reseeds noise / moves latents on onsets).

Both include the analyzer's detection delay (the transient must reach the middle of its FFT
window), the wait for the next display frame and the draw; neither includes the sound card's
input latency (a few ms with a low-latency interface), which a file source does not have.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from phosphene.live.runtime.engine import Engine, EngineOptions


def _click_track(path: Path, sr: int, clicks: int, interval_s: float) -> list[float]:
    import soundfile as sf

    times = [1.0 + k * interval_s for k in range(clicks)]
    x = np.zeros(int((times[-1] + 1.0) * sr), np.float32)
    for t in times:
        i = int(round(t * sr))
        x[i:i + 48] = 0.6
    sf.write(path, x, sr)
    return times


def run_latency_bench(*, model: str = "builtin:abstract", device: str | None = None,
                      size: tuple[int, int] = (512, 512), fps: float = 60.0, clicks: int = 12,
                      interval_s: float = 0.6, sample_rate: int = 48000) -> dict:
    frames = []
    with tempfile.TemporaryDirectory(prefix="phosphene-bench-") as tmp:
        wav = Path(tmp) / "clicks.wav"
        times = _click_track(wav, sample_rate, clicks, interval_s)
        options = EngineOptions(preset="default", model=model, device=device, headless=True,
                                audio_file=wav, output="none", osc_port=None, size=size,
                                fps=fps, compile_before_start=True)
        engine = Engine(options, on_frame=frames.append)
        report = engine.run()
    start = engine.audio_started_at
    sr = report["audio"]["sample_rate"]
    onsets = []                      # (click wall time, sample index of the onset hop)
    for t in times:
        click_sample = int(round(t * sr))
        # the first frame whose state has seen the click: its onset hop is the first hop
        # after the click where flash.amount rose
        onsets.append((start + t, click_sample))
    effects_ms, gan_ms = [], []
    for click_at, click_sample in onsets:
        onset_hop = next((f.state.sample_index for f in frames
                          if f.state.sample_index >= click_sample
                          and f.state.effect_params.get("flash.amount", 0.0) > 0.2), None)
        if onset_hop is None:
            continue
        first_fx = next(f for f in frames if f.state.sample_index >= onset_hop)
        effects_ms.append(1000 * (first_fx.presented_at - click_at))
        first_gan = next((f for f in frames if f.generator_sample is not None
                          and f.generator_sample >= onset_hop), None)
        if first_gan is not None:
            gan_ms.append(1000 * (first_gan.presented_at - click_at))

    def stats(values):
        if not values:
            return {"n": 0, "p50": None, "max": None}
        return {"n": len(values), "p50": round(float(np.median(values)), 1),
                "max": round(float(np.max(values)), 1)}

    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "model": model, "device": report["device"], "size": f"{size[0]}x{size[1]}",
            "fps_target": fps, "fps": report["frames"]["fps"], "clicks": clicks,
            "effects_path_ms": stats(effects_ms), "gan_path_ms": stats(gan_ms),
            "generator_ms_p50": report["frames"]["generator_ms"]["p50"],
            "synthesis": report["frames"]["synthesis"],
            "audio_block_ms": round(1000 * report["audio"]["hop_length"] / sr, 2),
            "analyzer_delay_ms": round(report["onsets"]["analyzer_delay_ms"], 2)}


def format_table(r: dict) -> str:
    def cell(s):
        return "–" if s["p50"] is None else f"{s['p50']:.1f} / {s['max']:.1f} (n={s['n']})"

    lines = [f"click -> first frame showing it ({r['machine']}; {r['model']} on {r['device']}, "
             f"{r['size']}, display {r['fps']:.1f} of {r['fps_target']:g} fps)", "",
             "| path | latency p50 / max (ms) |", "|---|---|",
             f"| effects (onset -> flash) | {cell(r['effects_path_ms'])} |",
             f"| GAN (onset -> generator frame) | {cell(r['gan_path_ms'])} |", "",
             f"generator frame p50: {r['generator_ms_p50']} ms; audio block: "
             f"{r['audio_block_ms']} ms; analyzer detection delay: {r['analyzer_delay_ms']} ms "
             "(included above)"]
    return "\n".join(lines)
