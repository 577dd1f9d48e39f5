"""The projector window (glfw + moderngl): presents the effect chain's canvas.

    window = Window((1280, 720), monitor=1, fullscreen=True)
    chain = EffectChain.from_names(window.ctx, [...], size=(1280, 720))
    while window.poll():
        ...; chain.render(t)
        window.present(chain.canvas)

Keys: ``f`` toggles fullscreen (on the chosen monitor), ``Esc`` or ``q`` quits, ``o`` shows or
hides the overlay (fps and frame time, and what the owner adds: ``set_overlay_lines``). The canvas keeps its own size; the window fits it with
letterbox bars (the whole picture, bars where the aspect ratios differ), crop (fills the
window, cuts the overhang) or stretch. When the window is exactly the canvas size, presenting is
a 1:1 copy: the window shows the same pixels a headless render writes to a file.

The window opens at the canvas size, or smaller with the canvas's aspect ratio where that does
not fit its monitor's work area (the screen less panels and, with a window manager, the
window's frame): a 1024x1024 canvas on a 1280x720 screen opens a 720x720 window, not one with
304 rows off-screen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from phosphene.errors import PhospheneError
from phosphene.render.effects import read_internal_shader
from phosphene.render.monitors import glfw_acquire, glfw_release, monitors_from_glfw
from phosphene.render.overlay import FrameClock, TextOverlay

log = logging.getLogger(__name__)

WINDOW_FITS = ("letterbox", "crop", "stretch")


def release_current_egl_context() -> None:
    """Unbind a headless EGL context from this thread, if one is current.

    libglvnd lets a thread have one current context across EGL and GLX: with a headless EGL
    context current (an offline render, a test), glfw's glXMakeCurrent fails with BadAccess and
    Xlib exits the process. The headless context stays valid; moderngl rebinds it on ``with ctx``.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
    except OSError:
        return  # no EGL library: no EGL context can be current
    # eglReleaseThread also works when the context's display was already terminated (a
    # released moderngl context), where eglMakeCurrent(NO_CONTEXT) would fail.
    egl.eglReleaseThread()


def fit_window_size(canvas: tuple[int, int], area: tuple[int, int]) -> tuple[int, int]:
    """The window size for ``canvas`` inside ``area`` (both (width, height)): the canvas size
    if it fits, else the largest size with the canvas's aspect ratio that does."""
    cw, ch = int(canvas[0]), int(canvas[1])
    scale = min(1.0, area[0] / cw, area[1] / ch)
    if scale >= 1.0:
        return cw, ch
    return max(1, int(cw * scale)), max(1, int(ch * scale))


def fit_viewport(canvas: tuple[int, int], window: tuple[int, int],
                 fit: str) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the canvas inside a window of the given size (GL viewport,
    origin bottom-left). Crop gives a viewport larger than the window, centred."""
    cw, ch = canvas
    ww, wh = window
    if fit == "stretch" or cw * wh == ch * ww:
        return (0, 0, ww, wh)
    scale = min(ww / cw, wh / ch) if fit == "letterbox" else max(ww / cw, wh / ch)
    vw, vh = round(cw * scale), round(ch * scale)
    return ((ww - vw) // 2, (wh - vh) // 2, vw, vh)


class Window:
    def __init__(self, size: tuple[int, int] = (1280, 720), title: str = "phosphene",
                 monitor: int | None = None, fullscreen: bool = False, vsync: bool = True,
                 fit: str = "letterbox", overlay: bool = False) -> None:
        import moderngl

        if fit not in WINDOW_FITS:
            raise PhospheneError(f"unknown window fit {fit!r}; choose from "
                                 f"{', '.join(WINDOW_FITS)}")
        self.fit = fit
        self.glfw = glfw = glfw_acquire()
        try:
            handles = glfw.get_monitors() or []
            if monitor is not None and not 0 <= monitor < len(handles):
                listed = "; ".join(f"{m.index}: {m.name} {m.current}"
                                   for m in monitors_from_glfw(glfw)) or "none"
                raise PhospheneError(f"no monitor {monitor}; monitors: {listed} "
                                     "(see `phosphene devices`)")
            self._monitor = handles[monitor] if monitor is not None else (
                glfw.get_primary_monitor() or (handles[0] if handles else None))
            glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
            glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
            glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
            glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
            canvas = (int(size[0]), int(size[1]))
            area = self._work_area()
            opened = fit_window_size(canvas, area[2:]) if area is not None else canvas
            self._windowed_size = opened
            self._windowed_pos: tuple[int, int] | None = None
            release_current_egl_context()  # glfw makes the new context current inside
            self.window = glfw.create_window(opened[0], opened[1], title, None, None)
            if not self.window:
                raise PhospheneError("cannot open an OpenGL 3.3 window (glfw.create_window failed)")
            if area is not None:
                self._place_inside(area, canvas, opened, monitor is not None)
            glfw.make_context_current(self.window)
            glfw.swap_interval(1 if vsync else 0)
            self.ctx = moderngl.create_context()
        except BaseException:
            glfw_release()
            raise
        self.fullscreen = False
        self._present_prog = self.ctx.program(vertex_shader=read_internal_shader("vertex"),
                                              fragment_shader=read_internal_shader("present"))
        self._present_prog["u_canvas"].value = 0
        self._present_vao = self.ctx.vertex_array(self._present_prog, [])
        self.overlay = TextOverlay(self.ctx)
        self.overlay_visible = overlay
        self.overlay_lines: list[str] = []    # under the fps line (``set_overlay_lines``)
        self._overlay_dirty = True
        self.clock = FrameClock()
        self._key_handlers: dict[int, Callable[[], None]] = {
            glfw.KEY_F: self.toggle_fullscreen,
            glfw.KEY_ESCAPE: self.request_close,
            glfw.KEY_Q: self.request_close,
            glfw.KEY_O: self.toggle_overlay,
        }
        glfw.set_key_callback(self.window, self._on_key)
        if fullscreen:
            self.set_fullscreen(True)
        self._closed = False

    # -- placement ----------------------------------------------------------------------------

    def _work_area(self) -> tuple[int, int, int, int] | None:
        """(x, y, width, height) of the monitor's work area, or None without a monitor."""
        if self._monitor is None:
            return None
        x, y, w, h = self.glfw.get_monitor_workarea(self._monitor)
        if w <= 0 or h <= 0:            # not reported: the monitor's whole mode
            mode = self.glfw.get_video_mode(self._monitor)
            if mode is None:
                return None
            (x, y), w, h = self.glfw.get_monitor_pos(self._monitor), mode.size.width, \
                mode.size.height
        return int(x), int(y), int(w), int(h)

    def _place_inside(self, area: tuple[int, int, int, int], canvas: tuple[int, int],
                      opened: tuple[int, int], chosen_monitor: bool) -> None:
        """Keep the whole window, frame included, on its monitor's work area: shrink it (same
        aspect) if its frame does not fit beside it, and move it there where it was shrunk or
        the monitor was chosen (otherwise the window manager places it)."""
        glfw = self.glfw
        ax, ay, aw, ah = area
        left, top, right, bottom = glfw.get_window_frame_size(self.window)
        inner = (max(1, aw - left - right), max(1, ah - top - bottom))
        size = fit_window_size(canvas, inner)
        if size != opened:
            glfw.set_window_size(self.window, *size)
            self._windowed_size = size
        if size != canvas:
            log.info("window %dx%d: the %dx%d canvas, scaled to fit the monitor's %dx%d work "
                     "area", size[0], size[1], canvas[0], canvas[1], aw, ah)
        if size != canvas or chosen_monitor:
            # 40 px in from the corner when there is room; centred where it is (nearly) full
            x = ax + left + min(40, (inner[0] - size[0]) // 2)
            y = ay + top + min(40, (inner[1] - size[1]) // 2)
            glfw.set_window_pos(self.window, x, y)

    # -- input --------------------------------------------------------------------------------

    def _on_key(self, window: Any, key: int, scancode: int, action: int, mods: int) -> None:
        if action != self.glfw.PRESS:
            return
        handler = self._key_handlers.get(key)
        if handler is not None:
            try:
                handler()
            except Exception:  # noqa: BLE001 - a key must never take the show down
                log.exception("key handler for key %d failed", key)

    def on_key(self, key: int, handler: Callable[[], None]) -> None:
        """Bind a glfw key code (e.g. ``glfw.KEY_SPACE``) to a function."""
        self._key_handlers[key] = handler

    def poll(self) -> bool:
        """Process window events; False once the window should close."""
        self.glfw.poll_events()
        return not self.glfw.window_should_close(self.window)

    def request_close(self) -> None:
        self.glfw.set_window_should_close(self.window, True)

    def toggle_overlay(self) -> None:
        self.overlay_visible = not self.overlay_visible

    def set_overlay_lines(self, lines: list[str]) -> None:
        """What the overlay shows under the fps line (``render/overlay.py`` has the
        conventions); drawn from the next frame on."""
        if lines != self.overlay_lines:
            self.overlay_lines = list(lines)
            self._overlay_dirty = True

    def set_overlay_levels(self, level: float, lamps: tuple[float, ...] = ()) -> None:
        """The overlay's meter (0..1) and lamps (0..1 each), for every frame."""
        self.overlay.set_levels(level, lamps)

    # -- fullscreen ---------------------------------------------------------------------------

    def toggle_fullscreen(self) -> None:
        self.set_fullscreen(not self.fullscreen)

    def set_fullscreen(self, on: bool) -> None:
        glfw = self.glfw
        if on == self.fullscreen or self._monitor is None:
            return
        if on:
            self._windowed_pos = glfw.get_window_pos(self.window)
            self._windowed_size = glfw.get_window_size(self.window)
            mode = glfw.get_video_mode(self._monitor)
            glfw.set_window_monitor(self.window, self._monitor, 0, 0, mode.size.width,
                                    mode.size.height, mode.refresh_rate or glfw.DONT_CARE)
            glfw.set_input_mode(self.window, glfw.CURSOR, glfw.CURSOR_HIDDEN)
        else:
            x, y = self._windowed_pos or (40, 40)
            w, h = self._windowed_size
            glfw.set_window_monitor(self.window, None, x, y, w, h, glfw.DONT_CARE)
            glfw.set_input_mode(self.window, glfw.CURSOR, glfw.CURSOR_NORMAL)
        self.fullscreen = on
        log.info("fullscreen %s", "on" if on else "off")

    @property
    def refresh_hz(self) -> int:
        """The monitor's refresh rate in Hz, 0 where it reports none (Xvfb, some VMs)."""
        if self._monitor is None:
            return 0
        mode = self.glfw.get_video_mode(self._monitor)
        return int(mode.refresh_rate or 0) if mode is not None else 0

    @property
    def framebuffer_size(self) -> tuple[int, int]:
        w, h = self.glfw.get_framebuffer_size(self.window)
        return int(w), int(h)

    # -- output -------------------------------------------------------------------------------

    def present(self, canvas: Any, capture: bool = False) -> np.ndarray | None:
        """Draw ``canvas`` (the chain's framebuffer or its texture) fitted to the window, the
        overlay if shown, and swap buffers (waits for vsync). With ``capture`` returns what the
        window shows as (H, W, 3) uint8, top row first, read from the default framebuffer."""
        import moderngl

        texture = canvas.color_attachments[0] if hasattr(canvas, "color_attachments") else canvas
        fb_size = self.framebuffer_size
        if fb_size[0] == 0 or fb_size[1] == 0:  # minimised
            self.glfw.swap_buffers(self.window)
            return None
        screen = self.ctx.screen
        screen.use()
        self.ctx.viewport = (0, 0, *fb_size)
        screen.clear(0.0, 0.0, 0.0, 1.0)
        viewport = fit_viewport(texture.size, fb_size, self.fit)
        one_to_one = viewport[2:] == tuple(texture.size)
        gl_filter = moderngl.NEAREST if one_to_one else moderngl.LINEAR
        texture.filter = (gl_filter, gl_filter)
        self.ctx.viewport = viewport
        self.ctx.disable(moderngl.BLEND)
        texture.use(0)
        self._present_vao.render(moderngl.TRIANGLES, vertices=3)
        if self.clock.tick() or self._overlay_dirty:
            self._overlay_dirty = False
            self.overlay.set_lines([f"{self.clock.fps:5.1f} fps  {self.clock.frame_ms:5.2f} ms",
                                    *self.overlay_lines])
        if self.overlay_visible:
            self.overlay.draw(fb_size[1], scale=2 if fb_size[1] >= 1440 else 1)
        self.ctx.viewport = (0, 0, *fb_size)
        shot = None
        if capture:
            data = screen.read(viewport=(0, 0, *fb_size), components=3, alignment=1)
            shot = np.frombuffer(data, np.uint8).reshape(fb_size[1], fb_size[0], 3)[::-1].copy()
        self.glfw.swap_buffers(self.window)
        return shot

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.overlay.release()
        self._present_vao.release()
        self._present_prog.release()
        self.ctx.release()
        self.glfw.make_context_current(None)  # leave the thread free for a headless context
        self.glfw.destroy_window(self.window)
        glfw_release()

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
