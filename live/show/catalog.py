"""Which presets ``/phosphene/preset/load NAME``, ``/preset/next`` and ``/preset/prev`` reach.

The catalog is the folder of the preset the show started with (a performer keeps a set's
presets together), plus the presets shipped with phosphene. Names from the network are checked
with ``is_safe_name`` and only ever looked up as ``<folder>/<name>.yaml`` among the files the
folder lists, so nothing received becomes a path elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from phosphene.errors import PhospheneError
from phosphene.live.control.routes import is_safe_name
from phosphene.live.show.presets import Preset, load_preset_file, resolve_preset, shipped_presets


class PresetCatalog:
    def __init__(self, folder: Path | None):
        self.folder = folder

    def _folder_presets(self) -> dict[str, Path]:
        if self.folder is None or not self.folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.folder.glob("*.yaml")) if is_safe_name(p.stem)}

    def names(self) -> list[str]:
        """Presets in order: the folder's, then shipped ones not shadowed by the folder."""
        own = self._folder_presets()
        return list(own) + [n for n in shipped_presets() if n not in own]

    def path(self, name: str) -> Path:
        if not is_safe_name(name):
            raise PhospheneError(f"preset name {name!r} is not a name")
        own = self._folder_presets()
        if name in own:
            return own[name]
        if name in shipped_presets():
            return resolve_preset(name)
        raise PhospheneError(f"no preset named {name!r}; available: {', '.join(self.names())}")

    def load(self, name: str) -> tuple[Preset, Path]:
        path = self.path(name)
        return load_preset_file(path), path

    def neighbour(self, current: str, step: int) -> str:
        """The preset ``step`` places after ``current`` (wrapping around)."""
        names = self.names()
        if not names:
            raise PhospheneError("no presets to switch to")
        index = names.index(current) if current in names else -1
        return names[(index + step) % len(names)]
