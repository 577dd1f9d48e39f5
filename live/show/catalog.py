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

    def name_of(self, path: Path | None) -> str | None:
        """The catalog name of the preset file ``path`` (its place in ``names()``), whatever
        the ``name:`` inside it says; None for a file the catalog does not list."""
        if path is None:
            return None
        where = _resolved(path)
        own = self._folder_presets()
        for name, file in own.items():
            if _resolved(file) == where:
                return name
        name = path.stem
        if name in shipped_presets() and name not in own \
                and _resolved(resolve_preset(name)) == where:
            return name
        return None

    def neighbour(self, current: Path | None, step: int) -> str:
        """The preset ``step`` places after the running preset's file ``current``, wrapping
        around. Files are the places: performers copy a preset and keep its ``name:``. From a
        file the catalog does not list, next is the first preset and prev the last."""
        names = self.names()
        if not names:
            raise PhospheneError("no presets to switch to")
        here = self.name_of(current)
        if here is None:
            return names[0] if step >= 0 else names[-1]
        return names[(names.index(here) + step) % len(names)]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()
