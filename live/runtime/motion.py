"""How much the picture travels through a song: the figures of ``phosphene bench motion``.

A preset is run through the offline pipeline (the same analyzer, show and generator as a
render) and each generator frame -- the composition, before the effect chain pulses colour and
light over it (a hue drift alone would read as constant motion) -- is reduced to a *layout*: a
16x16 thumbnail with the mean taken out of each colour channel and divided by its overall
spread, so brightness and contrast do not count, only where the colour fields are. Two layouts
are ``distance`` apart: 0 for the same picture, about 1 for unrelated ones. The contact sheet
and the preview show the finished frames, effects included.

Figures, all relative to ``seed_distance`` (the mean distance between images of random seeds
of the model: what "a different picture" means for this model):

- ``near_static``: the share of the time the picture moved less than ``STATIC_SHARE`` of a
  seed distance in the last ``STATIC_SPAN_S`` seconds. "The picture" at a moment is the layouts
  of the second before it averaged: a pulse on the beat goes there and back within the second
  and cancels, what is left is where the picture goes;
- ``diversity``: the mean pairwise distance of those pictures sampled every few seconds;
- ``music_correlation``: Pearson correlation between the picture's change from one second to
  the next and the music's (the change of its log band energies between the last two
  seconds), computed here from the audio, independently of the analyzer;
- with known sections (``song.sections.json`` from ``examples/make_song.py``): for each
  boundary, how far the picture moved from just before it to one bar after it, and whether
  that is a visible scene change (at least ``SCENE_SHARE`` of a seed distance).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LAYOUT_SIDE = 16
STATIC_SPAN_S = 4.0      # near-static: in the last 4 s the picture (each a 1 s average) ...
STATIC_SHARE = 0.1       # ... moved less than 10 % of a seed distance
SCENE_SHARE = 0.35       # a visible scene change: a third of the way to another seed's picture
MAX_LAG_S = 2.0          # the picture may answer the music this much later
SEEDS = tuple(range(1000, 1016))


def layout(pixels: np.ndarray) -> np.ndarray:
    """The layout of an ``(H, W, 3)`` uint8 frame: ``LAYOUT_SIDE``² x 3 floats, each channel's
    mean removed, divided by the frame's spread (a flat frame is all zeros)."""
    from PIL import Image

    small = np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).resize(
        (LAYOUT_SIDE, LAYOUT_SIDE), Image.BOX), dtype=np.float64)
    small -= small.mean(axis=(0, 1), keepdims=True)
    spread = float(small.std())
    return (small / spread if spread > 1e-6 else small * 0.0).ravel()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """0 = the same layout, ~1 = unrelated layouts (two independent unit-spread layouts differ
    by sqrt(2) in RMS), up to 2 for opposite ones."""
    return float(np.sqrt(np.mean((a - b) ** 2) / 2.0))


def mean_pairwise(layouts: list[np.ndarray]) -> float:
    pairs = [distance(layouts[i], layouts[j]) for i in range(len(layouts))
             for j in range(i + 1, len(layouts))]
    return float(np.mean(pairs)) if pairs else 0.0


def seed_distance(model: str, psi: float, device: str = "cpu") -> float:
    """Mean pairwise layout distance of the model's images for ``SEEDS`` at ``psi``."""
    # start-up time: torch and the model are loaded only when a benchmark runs
    import torch

    from phosphene.models import load_generator

    G = load_generator(model).to(device).eval()
    with torch.inference_mode():
        ws = G.mapping(G.z_from_seeds(list(SEEDS), device=device), None, truncation_psi=psi)
        images = G.synthesis(ws, noise_mode="const")
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return mean_pairwise([layout(p.permute(1, 2, 0).cpu().numpy()) for p in pixels])


def music_change(mono: np.ndarray, sample_rate: int, times_s: np.ndarray) -> np.ndarray:
    """The music's change at each time: RMS difference (dB) of 24 log-spaced band energies
    averaged over the last second and over the second before it."""
    n_fft, hop = 2048, 1024
    frames = max(0, (len(mono) - n_fft) // hop + 1)
    if frames == 0:
        return np.zeros(len(times_s))
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(mono[idx] * np.hanning(n_fft), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = np.geomspace(40.0, min(16000.0, 0.45 * sample_rate), 25)
    bands = np.stack([spec[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
                      for lo, hi in zip(edges[:-1], edges[1:])], axis=1)
    db = 10.0 * np.log10(bands + 1e-10)
    db = np.maximum(db, db.max() - 80.0)
    centre_s = (np.arange(frames) * hop + n_fft / 2) / sample_rate
    out = np.zeros(len(times_s))
    for k, t in enumerate(times_s):
        last = db[(centre_s > t - 1.0) & (centre_s <= t)]
        before = db[(centre_s > t - 2.0) & (centre_s <= t - 1.0)]
        if len(last) and len(before):
            out[k] = float(np.sqrt(np.mean((last.mean(axis=0) - before.mean(axis=0)) ** 2)))
    return out


def read_sections(path: Path) -> tuple[list[tuple[str, float]], float | None]:
    """``(name, start_s)`` of each section and the BPM, from a ``*.sections.json``."""
    doc = json.loads(path.read_text())
    return ([(s["name"], float(s["start_s"])) for s in doc["sections"]],
            float(doc["bpm"]) if doc.get("bpm") else None)


@dataclass
class MotionResult:
    preset: str
    audio: str
    duration_s: float
    fps: float
    size: tuple[int, int]
    seed_distance: float
    near_static: float                 # share of the time, 0..1
    diversity: float                   # mean pairwise distance / seed distance
    music_correlation: float           # picture change vs music change, same moment
    lagged_correlation: float          # ... with the picture lag_s behind (the best lag)
    lag_s: float
    sample_every_s: float
    boundaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def visible_changes(self) -> int:
        return sum(1 for b in self.boundaries if b["visible"])

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items()}
        out["size"] = list(self.size)
        out["visible_changes"] = self.visible_changes
        return out


def measure_motion(audio: str | Path, preset: str = "default", *, model: str | None = None,
                   size: tuple[int, int] = (96, 96), fps: float = 10.0, device: str = "cpu",
                   sections: Path | None = None, sample_every_s: float | None = None,
                   keep_every_s: float | None = None, keep_all: bool = False,
                   seed_dist: float | None = None) -> tuple[MotionResult, list]:
    """Render ``audio`` with ``preset`` and measure how its picture moves. Returns the figures
    and the frames kept for a contact sheet or a preview: ``(time_s, pixels)`` every
    ``keep_every_s`` seconds, or every frame with ``keep_all``."""
    # start-up time: the offline renderer loads torch
    from phosphene.live.runtime.offline import EffectStage, OfflineRender, RenderSettings
    from phosphene.live.runtime.session import source_from_preset

    source = source_from_preset(preset, model)
    settings = RenderSettings(size=size, fps=fps, batch=8, device=device, progress=False)
    job = OfflineRender(audio, source, settings)
    want_pixels = keep_all or bool(keep_every_s)
    keep_step = None if not keep_every_s else max(1, int(round(keep_every_s * fps)))
    stage = EffectStage(*job.size, settings.fit, job.sample_rate) if want_pixels else None
    layouts, kept, pending = [], [], []
    try:
        batch: list = []
        for k, state in job.states(0, job.n_frames):
            batch.append((k, state))
            if len(batch) == settings.batch or k == job.n_frames - 1:
                images = job.generator.generate([st.request for _, st in batch])
                # the composition: the generator's picture, before the effects pulse on it
                pictures = ((images.clamp(-1, 1) + 1) * 127.5).round().byte()
                for i, (k2, st) in enumerate(batch):
                    layouts.append(layout(pictures[i].permute(1, 2, 0).cpu().numpy()))
                    if stage is not None:
                        # what the audience sees, for the contact sheet and the preview
                        out = stage.render(images[i:i + 1], st, job.frame_time_s(k2))
                        pending.append(k2)
                        if out is not None:
                            _keep(kept, pending.pop(0), out, job, keep_all, keep_step)
                batch = []
        if stage is not None:
            for out in stage.drain():
                _keep(kept, pending.pop(0), out, job, keep_all, keep_step)
    finally:
        if stage is not None:
            stage.close()
    times = np.array([job.frame_time_s(k) for k in range(len(layouts))])

    psi = source.preset.parameter_specs()["psi"].default
    if seed_dist is None:
        seed_dist = seed_distance(model or source.preset.model, psi, device)
    # each moment's picture: the layouts of the last second averaged, so a pulse on the beat
    # (there and back within the second) cancels and only where the picture goes counts
    second = max(1, int(round(fps)))
    sums = np.cumsum(np.vstack([np.zeros((1, layouts[0].size)), np.array(layouts)]), axis=0)
    smooth = [(sums[k + 1] - sums[max(0, k + 1 - second)]) / (k + 1 - max(0, k + 1 - second))
              for k in range(len(layouts))]
    span = max(1, int(round(STATIC_SPAN_S * fps)))
    travelled = np.array([distance(smooth[k], smooth[k - span])
                          for k in range(span + second, len(smooth))])
    near_static = (float(np.mean(travelled < STATIC_SHARE * seed_dist)) if len(travelled)
                   else 1.0)
    moved = np.array([distance(smooth[k], smooth[k - second])
                      for k in range(second, len(smooth))])

    duration = len(job.mono) / job.sample_rate
    every = sample_every_s or (2.0 if duration <= 30.0 else 4.0)
    step = max(1, int(round(every * fps)))
    diversity = mean_pairwise(smooth[second - 1::step]) / seed_dist

    change = music_change(job.mono, job.sample_rate, times[second:])
    valid = times[second:] >= 2.0
    corr, best, best_lag = _correlation(moved, change, valid, 0), -1.0, 0.0
    # the picture answers a change a little later (the detector's half second, then a move of
    # a few beats): the best correlation with the picture up to MAX_LAG_S behind
    for lag in range(0, int(round(MAX_LAG_S * fps)) + 1):
        c = _correlation(moved, change, valid, lag)
        if c > best:
            best, best_lag = c, lag / fps

    boundaries = []
    if sections is not None:
        parts, bpm = read_sections(sections)
        tempo = bpm or job.session.analyzer.settings.tempo_prior_bpm
        bar_s = 4 * 60.0 / tempo
        for name, start in parts[1:]:
            before = int(round((start - 0.25) * fps))
            after = int(round((start + bar_s) * fps))
            if before < 0 or after >= len(layouts):
                continue
            d = distance(smooth[before], smooth[after]) / seed_dist
            boundaries.append({"section": name, "start_s": start, "change": round(d, 3),
                               "visible": d >= SCENE_SHARE})
    result = MotionResult(preset=preset, audio=str(audio), duration_s=round(duration, 2),
                          fps=fps, size=tuple(job.size), seed_distance=round(seed_dist, 4),
                          near_static=round(near_static, 4), diversity=round(diversity, 3),
                          music_correlation=round(corr, 3),
                          lagged_correlation=round(best, 3), lag_s=best_lag, sample_every_s=every,
                          boundaries=boundaries)
    return result, kept


def _correlation(picture: np.ndarray, music: np.ndarray, valid: np.ndarray, lag: int) -> float:
    """Pearson correlation of ``picture[k + lag]`` with ``music[k]`` where ``valid[k]``."""
    n = len(music) - lag
    if n <= 2:
        return 0.0
    a, b = picture[lag:lag + n][valid[:n]], music[:n][valid[:n]]
    if len(a) <= 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _keep(kept: list, k: int, pixels: np.ndarray, job, keep_all: bool,
          keep_step: int | None) -> None:
    if keep_all or (keep_step and k % keep_step == 0):
        kept.append((job.frame_time_s(k), np.array(pixels)))


def contact_sheet(kept: list, columns: int, label: bool = True) -> np.ndarray:
    """Frames side by side in rows of ``columns``, each with its time in the corner."""
    from PIL import Image, ImageDraw

    h, w = kept[0][1].shape[:2]
    rows = math.ceil(len(kept) / columns)
    sheet = Image.new("RGB", (columns * w, rows * h), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for i, (t, pixels) in enumerate(kept):
        x, y = (i % columns) * w, (i // columns) * h
        sheet.paste(Image.fromarray(pixels), (x, y))
        if label:
            text = f"{int(t // 60)}:{t % 60:04.1f}" if t >= 60 else f"{t:.1f}s"
            draw.rectangle((x, y, x + 7 * len(text) + 4, y + 13), fill=(0, 0, 0))
            draw.text((x + 2, y + 1), text, fill=(255, 255, 255))
    return np.asarray(sheet)


def write_preview(kept: list, path: Path, fps: float, quality: int = 60) -> None:
    """An animated WebP (or GIF, by the suffix) of the kept frames."""
    from PIL import Image

    images = [Image.fromarray(p) for _, p in kept]
    duration_ms = int(round(1000.0 / fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms,
                       loop=0, optimize=True)
    else:
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms,
                       loop=0, quality=quality, method=6)


def format_table(results: list[MotionResult]) -> str:
    lines = ["| preset | audio | near-static | diversity (x seed distance) | "
             "picture/music change correlation (same time; best lag) | "
             "scene changes at boundaries |",
             "|---|---|---|---|---|---|"]
    for r in results:
        scenes = (f"{r.visible_changes}/{len(r.boundaries)}: " + ", ".join(
            f"{b['section']}@{b['start_s']:g}s {b['change']:.2f}" for b in r.boundaries)
                  if r.boundaries else "(no sections)")
        lines.append(f"| {r.preset} | {Path(r.audio).name} ({r.duration_s:g} s) | "
                     f"{100 * r.near_static:.0f} % | {r.diversity:.2f} | "
                     f"{r.music_correlation:+.2f}; {r.lagged_correlation:+.2f} at "
                     f"{r.lag_s:.1f} s | {scenes} |")
    return "\n".join(lines)
