"""Projection: the ``w`` whose frame looks like a given image, found by optimisation.

The method is NVlabs' projector (stylegan2-ada-pytorch ``projector.py``) without its noise
optimisation: Adam on ``w`` starting from the average ``w``, a learning rate that ramps up over
the first 5 % of the steps and down (cosine) over the last 25 %, and a decaying random jitter on
``w`` during the first 75 % (it shakes the search out of the first basin it finds). The per-pixel
noise inputs stay at zero, so the result is a pure function of ``w``: the show renders it the
same with its noise parameter at 0.

``w`` mode optimises one ``[w_dim]`` vector used by every layer (stays inside the space the
mapping network covers: it moves and interpolates like a seed's ``w``); ``w+`` mode optimises
one row per layer (``[num_ws, w_dim]``): closer to the image, less well-behaved when animated.

The loss compares the frame with the target image (``ImageLoss``, ``losses.py``): pixels plus
multi-scale structure by default, a perceptual (VGG16 feature) distance when the user supplies
its weights.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from phosphene.errors import PhospheneError

from .losses import ImageLoss, default_loss

# NVlabs' projector defaults
INITIAL_LEARNING_RATE = 0.1
LR_RAMPUP = 0.05
LR_RAMPDOWN = 0.25
INITIAL_NOISE_FACTOR = 0.05
NOISE_RAMP = 0.75
W_AVG_SAMPLES = 10_000
DEFAULT_STEPS = 500


@dataclass
class Projection:
    """The result: ``w`` ``[num_ws, w_dim]`` float32 (rows equal unless ``w_plus``), the frame
    it renders and the target, both ``[C, R, R]`` in nominal [-1, 1], and the loss per step."""

    w: np.ndarray
    frame: torch.Tensor
    target: torch.Tensor
    w_plus: bool
    losses: list[float] = field(default_factory=list)


def load_target(path: str | Path, resolution: int, channels: int = 3) -> torch.Tensor:
    """An image file as the generator's frame would be: the centre square, resized (Lanczos) to
    ``resolution``, ``[channels, R, R]`` float32 in [-1, 1]. Transparent pixels count as black
    on an opaque picture (the alpha is dropped)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as image:
            image.load()
            return image_to_target(image, resolution, channels)
    except FileNotFoundError:
        raise PhospheneError(f"image not found: {p}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PhospheneError(f"{p} is not an image PIL can read: {exc}") from None


def image_to_target(image, resolution: int, channels: int = 3) -> torch.Tensor:
    """A PIL image -> the target tensor (see ``load_target``)."""
    from PIL import Image

    image = image.convert("L" if channels == 1 else "RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.float32).reshape(resolution, resolution, -1)
    return torch.from_numpy(pixels).permute(2, 0, 1) / 127.5 - 1.0


def w_statistics(G, samples: int = W_AVG_SAMPLES, seed: int = 123,
                 device: torch.device | None = None) -> tuple[torch.Tensor, float]:
    """The mean ``w`` ``[w_dim]`` and its spread (root mean squared distance from the mean) over
    ``samples`` random ``z`` (the mapping's own ``w_avg`` is not trusted: an untrained or
    converted network may carry zeros there)."""
    device = device or G.mapping.w_avg.device
    rng = torch.Generator(device="cpu").manual_seed(int(seed))
    ws = []
    with torch.no_grad():
        for start in range(0, samples, 2000):
            n = min(2000, samples - start)
            z = torch.randn([n, G.z_dim], generator=rng).to(device)
            c = None
            if G.c_dim:
                c = torch.zeros([n, G.c_dim], device=device)
                c[:, 0] = 1
            ws.append(G.mapping(z, c)[:, 0].float())
    w = torch.cat(ws)
    mean = w.mean(0)
    return mean, float(((w - mean).square().sum() / len(w)).sqrt())


def learning_rate(step: int, steps: int, initial: float = INITIAL_LEARNING_RATE) -> float:
    """NVlabs' schedule: linear ramp up, cosine ramp down."""
    t = step / max(steps, 1)
    ramp = min(1.0, (1.0 - t) / LR_RAMPDOWN)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / LR_RAMPUP)
    return initial * ramp


def render(G, ws: torch.Tensor) -> torch.Tensor:
    """``ws [N, num_ws, w_dim]`` -> frames ``[N, C, R, R]`` with the noise inputs off."""
    return G.synthesis(ws, noise_mode="none", force_fp32=True)


def project(G, target: torch.Tensor, *, steps: int = DEFAULT_STEPS, w_plus: bool = False,
            loss: ImageLoss | None = None, seed: int = 0, progress: bool = True,
            description: str = "projecting",
            on_step: Callable[[int, float], None] | None = None) -> Projection:
    """Find the ``w`` whose frame resembles ``target`` (``[C, R, R]`` in [-1, 1] at the
    generator's resolution). ``seed`` fixes the jitter, so the same call gives the same ``w``
    on the same device. ``progress``: a tqdm bar on stderr."""
    from tqdm import tqdm

    if steps < 1:
        raise PhospheneError(f"projection steps must be at least 1, got {steps}")
    device = G.mapping.w_avg.device
    expected = (G.img_channels, G.img_resolution, G.img_resolution)
    if tuple(target.shape) != expected:
        raise PhospheneError(f"projection target has shape {list(target.shape)}; this model "
                             f"renders {list(expected)}")
    loss = loss or default_loss()
    loss = loss.to(device)
    target_batch = target.to(device=device, dtype=torch.float32).unsqueeze(0)
    w_avg, w_std = w_statistics(G, device=device)
    rows = G.num_ws if w_plus else 1
    w_opt = w_avg.detach().clone().reshape(1, 1, -1).repeat(1, rows, 1).requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt], betas=(0.9, 0.999), lr=INITIAL_LEARNING_RATE)
    rng = torch.Generator(device="cpu").manual_seed(int(seed))
    history: list[float] = []
    bar = tqdm(total=steps, desc=description, unit="step", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    with torch.enable_grad(), bar:
        for step in range(steps):
            t = step / steps
            noise_scale = w_std * INITIAL_NOISE_FACTOR * max(0.0, 1.0 - t / NOISE_RAMP) ** 2
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps)
            jitter = torch.randn(w_opt.shape, generator=rng).to(device) * noise_scale
            ws = (w_opt + jitter).expand(1, G.num_ws, -1) if not w_plus else w_opt + jitter
            value = loss(render(G, ws), target_batch)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            # MS-SSIM's powers of a clipped term have an infinite slope at 0: a step whose
            # gradient is not finite is skipped rather than allowed to wreck w
            if bool(torch.isfinite(w_opt.grad).all()):
                optimizer.step()
            history.append(float(value.detach()))
            if on_step is not None:
                on_step(step, history[-1])
            bar.update(1)
            if step % 10 == 0 or step == steps - 1:
                bar.set_postfix(loss=f"{history[-1]:.4f}", refresh=False)
    with torch.no_grad():
        ws = w_opt.detach().expand(1, G.num_ws, -1) if not w_plus else w_opt.detach()
        frame = render(G, ws)[0]
    return Projection(w=ws[0].float().cpu().numpy().copy(), frame=frame.cpu(),
                      target=target.float().cpu(), w_plus=w_plus, losses=history)


def before_after(target: torch.Tensor, frame: torch.Tensor, labels: bool = True):
    """The target and the projection side by side (a PIL image), labelled."""
    from PIL import Image, ImageDraw

    def to_pixels(img: torch.Tensor) -> np.ndarray:
        out = (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
        out = out.permute(1, 2, 0).numpy()
        return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out[..., :3]

    a, b = to_pixels(target), to_pixels(frame)
    gap = max(2, a.shape[1] // 64)
    canvas = np.full((a.shape[0], a.shape[1] * 2 + gap, 3), 255, dtype=np.uint8)
    canvas[:, :a.shape[1]] = a
    canvas[:, a.shape[1] + gap:] = b
    picture = Image.fromarray(canvas)
    if labels and a.shape[0] >= 64:
        draw = ImageDraw.Draw(picture)
        for x, text in ((4, "target"), (a.shape[1] + gap + 4, "projection")):
            draw.rectangle((x - 2, 2, x + 6 * len(text) + 2, 14), fill=(0, 0, 0))
            draw.text((x, 3), text, fill=(255, 255, 255))
    return picture
