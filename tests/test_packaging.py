"""setup.cfg installs what the tree holds: every subpackage folder, the presets and the shaders.

setuptools cannot discover packages whose folder differs from their dotted name (``live`` is
``phosphene.live``), so ``packages`` is a hand-kept list; these tests keep it honest, so a new
subpackage folder cannot be left out of the wheel.
"""

from __future__ import annotations

from fnmatch import fnmatch

from source_tree import ROOT, cfg_lines, package_dirs, setup_cfg, source_packages


def test_every_mapped_folder_exists_and_is_a_package():
    for name, folder in package_dirs().items():
        assert folder.is_dir(), f"package_dir maps {name} to {folder}, which does not exist"
        assert (folder / "__init__.py").is_file(), f"{folder} ({name}) has no __init__.py"


def test_packages_list_is_exactly_the_package_folders():
    listed = set(cfg_lines(setup_cfg()["options"]["packages"]))
    found = set(source_packages())
    assert not found - listed, f"folders with an __init__.py missing from setup.cfg packages: " \
                               f"{sorted(found - listed)}"
    assert not listed - found, f"setup.cfg packages with no folder (or no __init__.py): " \
                               f"{sorted(listed - found)}"


def _package_data() -> dict[str, list[str]]:
    section = setup_cfg()["options.package_data"]
    return {package: [p.strip() for p in patterns.replace("\n", ",").split(",") if p.strip()]
            for package, patterns in section.items()}


def test_package_data_covers_presets_and_shaders():
    data, dirs = _package_data(), package_dirs()
    wanted = {"phosphene.presets": ("*.yaml", dirs["phosphene.presets"].glob("*.yaml")),
              "phosphene.render": ("shaders/*.glsl",
                                   (dirs["phosphene.render"] / "shaders").glob("*.glsl"))}
    for package, (description, files) in wanted.items():
        files = sorted(files)
        assert files, f"no {description} files under {package}'s folder"
        patterns = data.get(package, [])
        folder = dirs[package]
        for path in files:
            rel = path.relative_to(folder).as_posix()
            assert any(fnmatch(rel, p) for p in patterns), \
                f"{path.relative_to(ROOT)} is not in [options.package_data] {package} = {patterns}"


def test_every_folder_with_python_files_is_a_package():
    # a folder of modules without an __init__.py would be left out of `packages` unnoticed
    missing = sorted({str(path.parent.relative_to(ROOT))
                      for folder in package_dirs().values() for path in folder.rglob("*.py")
                      if not (path.parent / "__init__.py").is_file()})
    assert not missing, f"folders with modules but no __init__.py: {missing}"
