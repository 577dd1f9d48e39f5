"""The performer's overlay: frames per second and frame time, drawn over the picture.

Text is rasterised with Pillow's built-in font into a small one-channel texture, only when the
numbers change (twice a second), then drawn as a blended quad in the window's top-left corner.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from phosphene.render.effects import read_internal_shader

UPDATE_EVERY_S = 0.5
TEXT_SIZE = (240, 22)  # texture pixels: fits "999.9 fps  99.99 ms"


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


class TextOverlay:
    def __init__(self, ctx: Any) -> None:
        import moderngl

        self.ctx = ctx
        self.texture = ctx.texture(TEXT_SIZE, 1, alignment=1)
        self.texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self.program = ctx.program(vertex_shader=read_internal_shader("vertex"),
                                   fragment_shader=read_internal_shader("overlay"))
        self.program["u_text"].value = 0
        self.vao = ctx.vertex_array(self.program, [])
        self._font = _font(TEXT_SIZE[1] - 6)
        self.text = ""
        self.set_text("")

    def set_text(self, text: str) -> None:
        from PIL import Image, ImageDraw

        if text == self.text and text:
            return
        self.text = text
        img = Image.new("L", TEXT_SIZE, 0)
        ImageDraw.Draw(img).text((6, 2), text, fill=255, font=self._font)
        self.texture.write(np.asarray(img, np.uint8))

    def draw(self, framebuffer_height: int, margin: int = 8) -> None:
        """Blend the text box into the current framebuffer's top-left corner."""
        import moderngl

        w, h = TEXT_SIZE
        self.ctx.viewport = (margin, framebuffer_height - margin - h, w, h)
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.texture.use(0)
        self.vao.render(moderngl.TRIANGLES, vertices=3)
        self.ctx.disable(moderngl.BLEND)

    def release(self) -> None:
        for obj in (self.vao, self.program, self.texture):
            obj.release()
