"""Presets: shipped files load, mistakes name file + key path + what is allowed, hot reload."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from phosphene.errors import PhospheneError
from phosphene.live.show.director import Director
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control.routes import NAMESPACE, REPLIES
from phosphene.live.show.params import ParameterSet
from phosphene.live.show.presets import (
    PresetWatcher, load_preset, load_preset_file, resolve_preset, shipped_presets,
)

GOOD = textwrap.dedent("""\
    name: t
    keyframes:
      - seed: 1
      - seed: 2
    modes:
      volume-blend: {weight: 1.0}
    mappings:
      - {source: onset, target: flash.amount}
      - {source: level, target: psi, curve: exp}
    effects:
      - {name: flash}
""")


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_presets_load_and_cover_every_mode():
    assert {"default", "notebook", "showcase"} <= set(shipped_presets())
    notebook, _ = load_preset("notebook")
    assert len(notebook.keyframes) == 2
    specs = notebook.parameter_specs()
    assert specs["mode.volume-blend"].default == 1.0
    assert all(specs[f"mode.{m}"].default == 0.0 for m in ("onset-step", "drift", "layer-split"))
    showcase, _ = load_preset("showcase")
    specs = showcase.parameter_specs()
    assert all(specs[f"mode.{m}"].default > 0 for m in ("volume-blend", "onset-step", "drift",
                                                        "layer-split"))
    default, path = load_preset("default")
    assert default.model == "builtin:abstract" and path.name == "default.yaml"
    # effect parameters get the shader's ranges
    assert (specs["color.hue"].minimum, specs["color.hue"].maximum) == (-180.0, 180.0)


def test_a_preset_drives_the_core(tmp_path):
    preset = load_preset_file(write(tmp_path, GOOD))
    params = ParameterSet(list(preset.parameter_specs().values()))
    rng = np.random.default_rng(0)
    kf = [rng.standard_normal((4, 8)).astype(np.float32) for _ in preset.keyframe_specs()]
    d = Director(kf, preset.director_settings())
    out = d.update(params.values(), FeatureFrame.silent(0, 48000), 0.01)
    assert np.array_equal(out.w_raw, kf[0])
    assert preset.core_mappings()[1].curve == "exp"
    assert preset.effect_names() == ["flash"]


def test_the_director_reads_the_presets_own_mode_settings(tmp_path):
    # one schema: what the preset validated is what the director runs with
    text = GOOD.replace("volume-blend: {weight: 1.0}",
                        "volume-blend: {weight: 1.0, toward: 2}\n"
                        "  layer-split: {fine: {source: onset, keyframe: 0}}")
    preset = load_preset_file(write(tmp_path, "transition_ms: 250\n" + text))
    settings = preset.director_settings()
    assert settings.volume_blend is preset.modes.volume_blend and settings.volume_blend.toward == 2
    assert settings.transition_ms == 250.0
    groups = settings.layer_split.groups
    assert list(groups) == ["coarse", "middle", "fine"]
    assert (groups["fine"].source, groups["fine"].keyframe) == ("onset", 0)
    assert (groups["coarse"].source, groups["coarse"].keyframe) == ("low", 1)   # the default


@pytest.mark.parametrize("edit, key, allowed", [
    ("  - {source: level, target: psi, curve: exp}", "mappings[1].curve",
     "'linear', 'exp' or 'log'"),
    ("  - {source: level, target: psi, kurve: exp}", "mappings[1]",
     "allowed: source, target, gain"),
    ("  - {source: loudness, target: psi}", "mappings[1].source", "param:<name>"),
    ("  - {source: level, target: nope}", "mappings[1].target", "known: "),
])
def test_errors_name_the_file_the_key_path_and_what_is_allowed(tmp_path, edit, key, allowed):
    text = GOOD.replace("  - {source: level, target: psi, curve: exp}", edit)
    if "curve: exp" in edit:
        text = text.replace("curve: exp", "curve: cubic")
    path = write(tmp_path, text)
    with pytest.raises(PhospheneError) as exc:
        load_preset_file(path)
    message = str(exc.value)
    assert str(path) in message and key in message and allowed in message


def test_more_error_paths(tmp_path):
    cases = {
        "modes:\n  volume-blend: {weight: 2}\n": ("modes.volume-blend.weight", "less than or equal to 1"),
        "modes:\n  wobble: {}\n": ("modes.wobble", "allowed: volume-blend, onset-step, drift"),
        "effects:\n  - {name: sparkle}\n": ("effects[0].name", "built-in effects"),
        "effects:\n  - {name: flash, params: {amout: 1}}\n": ("effects[0].params.amout", "amount"),
        "midi:\n  notes:\n    - {note: 1, address: /phosphene/nope}\n": ("midi.notes[0].address",
                                                                          "OSC namespace"),
        "colour: red\n": ("colour", "allowed: name, description, model"),
    }
    for extra, (key, allowed) in cases.items():
        path = write(tmp_path, "keyframes:\n  - seed: 1\n" + extra)
        with pytest.raises(PhospheneError) as exc:
            load_preset_file(path)
        assert key in str(exc.value) and allowed in str(exc.value), str(exc.value)
    with pytest.raises(PhospheneError, match="not valid YAML"):
        load_preset_file(write(tmp_path, "keyframes: [\n"))


def test_preset_resolution(tmp_path):
    assert resolve_preset("notebook").name == "notebook.yaml"
    path = write(tmp_path, GOOD)
    assert resolve_preset(str(path)) == path
    with pytest.raises(PhospheneError, match="shipped presets: .*default"):
        resolve_preset("nosuch")
    with pytest.raises(PhospheneError, match="not found"):
        resolve_preset(str(tmp_path / "missing.yaml"))


def test_hot_reload_picks_up_a_save_and_keeps_the_old_preset_on_a_broken_one(tmp_path):
    path = write(tmp_path, GOOD)
    watcher = PresetWatcher(path)
    assert watcher.poll() is None                       # nothing changed
    path.write_text(GOOD.replace("seed: 2", "seed: 99"))
    os.utime(path, ns=(1, 2_000_000_000))               # a different mtime whatever the fs
    new = watcher.poll()
    assert new is not None and new.keyframes[1].seed == 99
    path.write_text(GOOD.replace("weight: 1.0", "weight: lots"))
    os.utime(path, ns=(1, 3_000_000_000))
    assert watcher.poll() is None
    assert watcher.preset.keyframes[1].seed == 99       # the old one keeps playing
    assert "modes.volume-blend.weight" in watcher.error and str(path) in watcher.error
    path.write_text(GOOD)
    os.utime(path, ns=(1, 4_000_000_000))
    assert watcher.poll().keyframes[1].seed == 2 and watcher.error is None


def test_readme_documents_every_osc_address():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for route in NAMESPACE + REPLIES:
        assert f"`{route.pattern}`" in readme, route.pattern
