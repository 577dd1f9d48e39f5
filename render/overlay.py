"""The performer's overlay: the show's figures and warnings, drawn over the picture.

Text lines are rasterised with Pillow's built-in font into a small two-channel texture only when
they change (the window refreshes them twice a second): red holds ordinary text, green the
warnings (drawn amber). A level meter bar and a few lamps are drawn by the shader from uniforms
(``set_levels``), so they move every frame without rasterising anything. The box is blended on
a dark backing into the window's top-left corner, only as tall as its lines.

Lines are plain strings with two conventions (the live side's ``overlay_lines`` writes them):
a line that starts with ``WARNING`` is a warning; a line that starts with ``METER`` is the
level meter's row: its text is the label, the bar follows, then a lamp and the text after a
tab as its caption (``"|in -18 dBFS\tbeat"``). ``LAMP`` in a line is a lamp's place. Lamps are
numbered in the order they appear, the meter's first on its row (at most ``MAX_LAMPS``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from phosphene.render.effects import read_internal_shader

UPDATE_EVERY_S = 0.5
FONT_PX = 15
LINE_H = 20                       # texture pixels per line
PAD = 6                           # around the text
MAX_LINES = 14
BOX_W = 460                       # texture pixels
MAX_BOX_H = 2 * PAD + MAX_LINES * LINE_H   # the tallest box (tests keep their checks below it)
WARNING = "! "
METER = "|"
LAMP = "\x07"
MAX_LAMPS = 4
METER_X = 170                     # where the meter bar starts (the label is left of it)
METER_END = BOX_W - 70            # ... and ends (room for a lamp and its label after it)
LAMP_W = 12


class FrameClock:
    """Counts presented frames; reports the mean fps and frame time every ``UPDATE_EVERY_S``."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._frames = 0
        self.fps = 0.0
        self.frame_ms = 0.0

    def tick(self) -> bool:
        """Call once per presented frame; True when the figures were updated."""
        self._frames += 1
        now = time.perf_counter()
        elapsed = now - self._t0
        if elapsed < UPDATE_EVERY_S:
            return False
        self.fps = self._frames / elapsed
        self.frame_ms = 1000.0 * elapsed / self._frames
        self._t0, self._frames = now, 0
        return True


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def box_height(lines: int) -> int:
    """Texture pixels of a box holding ``lines`` lines."""
    return 2 * PAD + max(min(lines, MAX_LINES), 1) * LINE_H


class TextOverlay:
    def __init__(self, ctx: Any) -> None:
        import moderngl

        self.ctx = ctx
        self.texture = ctx.texture((BOX_W, MAX_BOX_H), 2, alignment=1)
        self.texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self.program = ctx.program(vertex_shader=read_internal_shader("vertex"),
                                   fragment_shader=read_internal_shader("overlay"))
        self.program["u_text"].value = 0
        self.vao = ctx.vertex_array(self.program, [])
        self._font = _font(FONT_PX)
        self.text = ""
        self.lines: list[str] = []
        self._levels: tuple = ()
        self.set_lines([""])
        self.set_levels(0.0, ())

    def set_text(self, text: str) -> None:
        """One or more lines (``\\n``), see the module doc for the conventions."""
        self.set_lines(text.split("\n"))

    def set_lines(self, lines: Sequence[str]) -> None:
        from PIL import Image, ImageDraw

        lines = list(lines)[:MAX_LINES]
        if lines == self.lines:
            return
        self.lines = lines
        self.text = "\n".join(lines)
        plain = Image.new("L", (BOX_W, MAX_BOX_H), 0)
        warn = Image.new("L", (BOX_W, MAX_BOX_H), 0)
        meter = (0.0, 0.0, 0.0, 0.0)
        lamps: list[tuple[float, float, float, float]] = []
        for row, line in enumerate(lines):
            y = PAD + row * LINE_H
            target = plain
            if line.startswith(WARNING):
                target = warn
            elif line.startswith(METER):
                label, _, caption = line[len(METER):].partition("\t")
                meter = (METER_X, y + 4, METER_END, y + LINE_H - 4)
                top = y + (LINE_H - LAMP_W) // 2
                lamps.append((METER_END + 8, top, METER_END + 8 + LAMP_W, top + LAMP_W))
                draw = ImageDraw.Draw(target)
                draw.text((METER_END + 14 + LAMP_W, y + 1), caption, fill=255, font=self._font)
                _draw_with_lamps(draw, PAD, y, label, self._font, lamps)
                continue
            _draw_with_lamps(ImageDraw.Draw(target), PAD, y, line, self._font, lamps)
        self.texture.write(np.ascontiguousarray(np.dstack([np.asarray(plain, np.uint8),
                                                           np.asarray(warn, np.uint8)])))
        self.program["u_box"].value = (BOX_W, box_height(len(lines)))
        self.program["u_meter"].value = meter
        rects = (lamps + [(0.0, 0.0, 0.0, 0.0)] * MAX_LAMPS)[:MAX_LAMPS]
        self.program["u_lamp_rect"].write(np.asarray(rects, np.float32).tobytes())

    def set_levels(self, level: float, lamps: Sequence[float]) -> None:
        """The meter bar's fill (0..1) and the lamps' brightness (0..1, in the order they
        appear); cheap enough for every frame (uniforms written only when they change)."""
        on = tuple(lamps[:MAX_LAMPS]) + (0.0,) * (MAX_LAMPS - min(len(lamps), MAX_LAMPS))
        if (level, on) == self._levels:
            return
        self._levels = (level, on)
        self.program["u_level"].value = min(max(float(level), 0.0), 1.0)
        self.program["u_lamp_on"].value = on

    @property
    def box_size(self) -> tuple[int, int]:
        """(width, height) of the box in texture pixels."""
        return BOX_W, box_height(len(self.lines))

    def draw(self, framebuffer_height: int, margin: int = 8, scale: int = 1) -> None:
        """Blend the box into the current framebuffer's top-left corner (``scale``: screen
        pixels per texture pixel, for large screens)."""
        import moderngl

        w, h = self.box_size
        w, h = w * scale, h * scale
        self.ctx.viewport = (margin, framebuffer_height - margin - h, w, h)
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.texture.use(0)
        self.vao.render(moderngl.TRIANGLES, vertices=3)
        self.ctx.disable(moderngl.BLEND)

    def release(self) -> None:
        for obj in (self.vao, self.program, self.texture):
            obj.release()


def _draw_with_lamps(draw: Any, x: float, y: int, line: str, font: Any,
                     lamps: list[tuple[float, float, float, float]]) -> None:
    """Draw ``line`` at (x, y); each ``LAMP`` leaves room for a lamp and records its place."""
    for n, part in enumerate(line.split(LAMP)):
        if n:
            top = y + (LINE_H - LAMP_W) // 2
            lamps.append((x + 2, top, x + 2 + LAMP_W, top + LAMP_W))
            x += LAMP_W + 6
        if part:
            draw.text((x, y + 1), part, fill=255, font=font)
            x += draw.textlength(part, font=font)
