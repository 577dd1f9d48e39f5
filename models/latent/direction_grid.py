"""A labelled picture of what each direction does: one row per direction, columns stepping
from ``-span`` to ``+span`` sigma around one seed's (truncated) latent, the way the show adds
them (after truncation, on the direction set's rows), so the performer sees each knob's range
before the show.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from phosphene.models.images import to_uint8
from phosphene.models.latent.directions import DirectionSet

LABEL_WIDTH = 84       # px of the left column holding each row's name (at least)
HEADER_HEIGHT = 18     # px of the top row holding each column's sigma
BACKGROUND = (16, 16, 16)
INK = (230, 230, 230)


def direction_rows(G, directions: DirectionSet, *, seed: int = 0, steps: int = 7,
                   span: float = 3.0, psi: float = 0.7, noise_mode: str = "const") -> np.ndarray:
    """The grid's pictures: ``[len(directions), steps, H, W, C]`` uint8."""
    if steps < 2:
        raise ValueError("a direction grid needs at least 2 steps")
    device = G.mapping.w_avg.device
    amounts = np.linspace(-span, span, steps, dtype=np.float32)
    rows = list(directions.rows)
    with torch.inference_mode():
        z = G.z_from_seeds([seed], device=device)
        c = G.class_vector(0, device=device) if G.c_dim > 0 else None   # conditional: class 0
        base = G.mapping(z, c, truncation_psi=psi)[0]             # [num_ws, w_dim]
        vectors = torch.from_numpy(directions.vectors * directions.sigmas[:, None]).to(device)
        out = []
        for k in range(len(directions)):
            ws = base.unsqueeze(0).repeat(steps, 1, 1)
            shift = torch.from_numpy(amounts).to(device)[:, None] * vectors[k][None, :]
            ws[:, rows] += shift[:, None, :]
            out.append(to_uint8(G.synthesis(ws, noise_mode=noise_mode)))
    return np.stack(out)


def direction_grid(G, directions: DirectionSet, *, names: dict[int, str] | None = None,
                   seed: int = 0, steps: int = 7, span: float = 3.0, psi: float = 0.7,
                   thumb: int = 96) -> Image.Image:
    """The labelled grid as an RGB image: ``thumb`` px per picture, a name per row
    (``dir.k`` and its name when it has one), the sigma of each column on top."""
    pictures = direction_rows(G, directions, seed=seed, steps=steps, span=span, psi=psi)
    count = pictures.shape[0]
    font, sigma = _label_font()
    labels = [f"dir.{k}" + (f"\n{names[k]}" if names and k in names else "")
              for k in range(count)]
    # the label column widens for long names
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = max([LABEL_WIDTH] + [measure.multiline_textbbox((0, 0), text, font=font)[2] + 12
                                for text in labels])
    grid = Image.new("RGB", (left + steps * thumb, HEADER_HEIGHT + count * thumb), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for j, amount in enumerate(np.linspace(-span, span, steps)):
        text = "0" if abs(amount) < 1e-9 else f"{amount:+.1f}{sigma}"
        x = left + j * thumb + thumb // 2
        draw.text((x, HEADER_HEIGHT // 2), text, fill=INK, font=font, anchor="mm")
    for k, label in enumerate(labels):
        y = HEADER_HEIGHT + k * thumb
        draw.multiline_text((6, y + thumb // 2), label, fill=INK, font=font, anchor="lm")
        for j in range(steps):
            picture = pictures[k, j]
            image = Image.fromarray(picture[..., 0] if picture.shape[2] == 1 else picture[..., :3])
            image = image.convert("RGB").resize((thumb, thumb), Image.Resampling.LANCZOS)
            grid.paste(image, (left + j * thumb, y))
    return grid


def _label_font() -> tuple[ImageFont.ImageFont, str]:
    """DejaVu Sans where the system has it (it has the sigma glyph); else Pillow's built-in
    font, which lacks it: then columns say "sd"."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", 11), "\u03c3"
    except OSError:
        return ImageFont.load_default(size=11), " sd"
