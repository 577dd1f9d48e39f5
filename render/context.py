"""OpenGL contexts: headless (EGL, no display needed) for offline renders, tests and benchmarks.

The window's context comes from glfw (``phosphene.render.window``); both run the same
``EffectChain``, so a video file shows exactly the pixels the projector showed.
"""

from __future__ import annotations

from typing import Any

from phosphene.errors import PhospheneError

MIN_GL_VERSION = 330


def create_headless_context() -> Any:
    """A standalone moderngl context on EGL (Mesa llvmpipe on a machine without a GPU)."""
    import moderngl

    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", require=MIN_GL_VERSION)
    except Exception as exc:  # moderngl/glcontext raise plain Exceptions here
        raise PhospheneError(
            f"cannot create a headless OpenGL {MIN_GL_VERSION // 100}.{MIN_GL_VERSION % 100 // 10}"
            f" context through EGL ({exc}); install libegl1 and libgl1-mesa-dri "
            "(scripts/setup.sh does)") from None
    return ctx


def describe(ctx: Any) -> str:
    """The renderer's name, e.g. 'llvmpipe (LLVM 15.0.6, 256 bits), OpenGL 4.5'."""
    info = ctx.info
    return f"{info.get('GL_RENDERER', '?')}, OpenGL {ctx.version_code // 100}.{ctx.version_code % 100 // 10}"
