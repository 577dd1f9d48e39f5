"""Monitors (through glfw): what ``--monitor N`` can name, and the "Monitors" part of
``phosphene devices``.

glfw is initialised once per process and shared by the window and these queries; a reference
count keeps a monitor listing from terminating glfw under an open window.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

from phosphene.errors import PhospheneError

_lock = threading.Lock()
_users = 0
_last_error = ""


def _on_glfw_error(code: int, description: bytes | str) -> None:
    global _last_error
    _last_error = description.decode() if isinstance(description, bytes) else str(description)


def glfw_acquire() -> Any:
    """Initialise glfw (or share the running instance). Raises PhospheneError naming why there
    is no display."""
    global _users
    import glfw

    with _lock:
        if _users == 0:
            glfw.ERROR_REPORTING = "ignore"  # errors arrive through the callback instead
            glfw.set_error_callback(_on_glfw_error)
            if not glfw.init():
                raise PhospheneError(f"no display for a window: {_last_error or 'glfw.init failed'}"
                                     " (set DISPLAY, or run on a machine with a screen)")
        _users += 1
    return glfw


def glfw_release() -> None:
    global _users
    import glfw

    with _lock:
        _users = max(_users - 1, 0)
        if _users == 0:
            glfw.terminate()


@dataclass(frozen=True)
class VideoMode:
    width: int
    height: int
    refresh_hz: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}" + (f"@{self.refresh_hz}Hz" if self.refresh_hz else "")


@dataclass(frozen=True)
class Monitor:
    index: int            # what --monitor N takes
    name: str
    x: int                # position of its top-left corner on the virtual desktop
    y: int
    current: VideoMode
    modes: list[VideoMode] = field(default_factory=list)
    primary: bool = False


def _mode(m: Any) -> VideoMode:
    return VideoMode(m.size.width, m.size.height, m.refresh_rate)


def monitors_from_glfw(glfw: Any) -> list[Monitor]:
    primary = glfw.get_primary_monitor()
    result = []
    for i, handle in enumerate(glfw.get_monitors() or []):
        name = glfw.get_monitor_name(handle)
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        x, y = glfw.get_monitor_pos(handle)
        modes = sorted({_mode(m) for m in glfw.get_video_modes(handle) or []},
                       key=lambda m: (m.width * m.height, m.refresh_hz), reverse=True)
        result.append(Monitor(i, name, x, y, _mode(glfw.get_video_mode(handle)), modes,
                              primary=bool(primary) and
                              glfw.get_monitor_name(primary) == glfw.get_monitor_name(handle)
                              and (x, y) == tuple(glfw.get_monitor_pos(primary))))
    return result


class MonitorList(list):
    """A list of Monitor with a ``note`` saying why it is empty (no display, ...)."""

    note: str = ""


def list_monitors() -> MonitorList:
    """The connected monitors, index = ``--monitor N``. Empty (with ``.note``) when there is no
    display."""
    result = MonitorList()
    try:
        glfw = glfw_acquire()
    except PhospheneError as exc:
        result.note = str(exc)
        return result
    try:
        result.extend(monitors_from_glfw(glfw))
    finally:
        glfw_release()
    if not result:
        result.note = "the display reports no monitors"
    return result


def monitor_lines(max_modes: int = 8) -> list[str]:
    """The body of the "Monitors" section of ``phosphene devices``."""
    monitors = list_monitors()
    if not monitors:
        return [f"(none: {monitors.note})"]
    lines = []
    for m in monitors:
        flag = "  (primary)" if m.primary else ""
        lines.append(f"{m.index}: {m.name}  {m.current} at +{m.x}+{m.y}{flag}")
        if m.modes:
            shown = ", ".join(str(mode) for mode in m.modes[:max_modes])
            more = f", ... {len(m.modes) - max_modes} more" if len(m.modes) > max_modes else ""
            lines.append(f"   modes: {shown}{more}")
    lines.append("(pick one with --monitor N)")
    return lines


def print_monitors(file: TextIO | None = None) -> None:
    """Print the "Monitors" section on its own (``phosphene devices`` prints it among the
    other device sections)."""
    out = file or sys.stdout
    print("Monitors:", file=out)
    for line in monitor_lines():
        print(f"  {line}", file=out)
