"""Saving captured keyframes into a preset (``/phosphene/keyframe/save``).

Each captured ``w`` becomes ``keyframes/<name>.npy`` beside the preset file (``captured-N``
for an unnamed one; an existing file is never overwritten: ``name-2.npy``), and the preset file
gets one ``- w: keyframes/<name>.npy`` entry per keyframe at the end of its ``keyframes`` list,
written as a person would (``control/preset_text.py``: comments and layout stay). The new text
is validated as a preset before anything is written; the ``.npy`` files are written before the
preset that names them.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Callable

import numpy as np

from phosphene.live.control.preset_text import with_keyframes
from phosphene.live.show.keyframes import save_w
from phosphene.live.show.presets import Preset, preset_from_text, read_preset_text, shipped_presets

KEYFRAME_FOLDER = "keyframes"


def is_shipped_preset(path: Path) -> bool:
    """Whether ``path`` is one of the presets installed with phosphene (never written to)."""
    shipped_dir = Path(str(importlib.resources.files("phosphene.presets")))
    return path.parent.resolve() == shipped_dir.resolve() and path.stem in shipped_presets()


def _free_name(folder: Path, stem: str, taken: set[str]) -> str:
    name, n = stem, 1
    while name in taken or (folder / f"{name}.npy").exists():
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name


def save_captured_keyframes(preset_path: Path, captured: list[tuple[str | None, np.ndarray]], *,
                            before_write: Callable[[str], None] | None = None
                            ) -> tuple[Preset, list[Path]]:
    """Write ``captured`` (name or None, ``w``) as keyframe files and entries of the preset at
    ``preset_path``. Returns the edited preset and the files written. ``before_write`` gets the
    new preset text just before the file is replaced (the watcher learns the save is ours)."""
    path = Path(preset_path)
    folder = path.parent / KEYFRAME_FOLDER
    taken: set[str] = set()
    planned: list[tuple[Path, np.ndarray]] = []
    unnamed = 0
    for name, w in captured:
        if name is None:
            unnamed += 1
            name = f"captured-{unnamed}"
        planned.append((folder / f"{_free_name(folder, name, taken)}.npy", w))
    entries = [{"w": f"{KEYFRAME_FOLDER}/{file.name}"} for file, _ in planned]
    text = with_keyframes(read_preset_text(path), entries)
    preset = preset_from_text(text, path)            # a text that would not load is not written
    for file, w in planned:
        save_w(file, w)
    if before_write is not None:
        before_write(text)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:   # the file's line endings kept
        f.write(text)
    tmp.replace(path)
    return preset, [file for file, _ in planned]
