"""The repository's source folders as setup.cfg installs them: folder -> dotted package name.

setup.cfg's ``package_dir`` maps the design card's top-level folders onto subpackages of the one
import package ``phosphene`` (``live`` -> ``phosphene.live``); the layering and packaging tests
read the tree through that same mapping, so they see the module names the code imports.
"""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.optionxform = str  # keys are package names: keep their case
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def cfg_lines(value: str) -> list[str]:
    """A multi-line setup.cfg value as its non-empty, non-comment lines."""
    return [line.strip() for line in value.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def cfg_mapping(value: str) -> dict[str, str]:
    """A ``key = value`` per line setup.cfg value (``package_dir``, ``package_data``)."""
    out = {}
    for line in cfg_lines(value):
        key, _, val = line.partition("=")
        out[key.strip()] = val.strip()
    return out


def package_dirs() -> dict[str, Path]:
    """Dotted package name -> its folder, from ``[options] package_dir``."""
    mapping = cfg_mapping(setup_cfg()["options"]["package_dir"])
    return {name: ROOT / folder for name, folder in mapping.items()}


def _dotted(package: str, folder: Path, path: Path) -> str:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def source_modules() -> dict[str, Path]:
    """Every module under the mapped folders: dotted name -> file. A folder nested inside a
    mapped folder belongs to the deepest mapping that contains it."""
    dirs = package_dirs()
    modules: dict[str, Path] = {}
    for package, folder in dirs.items():
        for path in sorted(folder.rglob("*.py")):
            owner = max((f for f in dirs.values() if path.is_relative_to(f)),
                        key=lambda f: len(f.parts))
            if owner == folder:
                modules[_dotted(package, folder, path)] = path
    return modules


def source_packages() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` under the mapped folders: dotted name -> folder."""
    return {name: path.parent for name, path in source_modules().items()
            if path.name == "__init__.py"}
