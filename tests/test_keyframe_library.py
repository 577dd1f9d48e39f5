"""The keyframe library (issue 14): captured keyframes can be named, saved into the preset
(keeping its comments; never into a shipped preset) and exported/imported as ``.npz``."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import yaml

from phosphene.cli import main as cli_main
from phosphene.errors import PhospheneError
from phosphene.live.analysis.features import FeatureFrame
from phosphene.live.control import routes
from phosphene.live.control.preset_text import with_keyframes
from phosphene.live.control.routes import NamespaceContext, Rejected, validate
from phosphene.live.runtime.actions import LiveActions
from phosphene.live.runtime.report import ErrorLog
from phosphene.live.show.events import ControlEvent
from phosphene.live.show.keyframes import (load_library, load_w, mapper_from_generator,
                                            resolve_keyframes, save_library)
from phosphene.live.show.presets import load_preset_file, parse_preset, resolve_preset
from phosphene.live.show.show import GeneratorFacts, Show
from phosphene.models.loading import save_generator
from phosphene.models.stylegan2 import Generator, GeneratorConfig

SR = 48000
HOP = 256

# a hand-written preset: comments, a blank line, flow and block entries
PRESET = """\
# my set -- written by hand
name: my-set
model: builtin:abstract
keyframes:            # where the set starts
  - seed: 1           # the calm one
  - {seed: 2}

  - seed: 3
# the modes follow
modes:
  drift:
    weight: 1.0       # keep moving
"""


@pytest.fixture(scope="module")
def G():
    config = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, channel_base=64,
                             channel_max=16, mapping_layers=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return Generator(config).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def facts(G):
    return GeneratorFacts.from_generator(G)


def run(show: Show, hops: int, start: int = 0) -> int:
    for i in range(start + 1, start + hops + 1):
        show.advance(FeatureFrame.silent(i * HOP, SR))
    return start + hops


def live(path, facts) -> tuple[Show, LiveActions, list]:
    preset = load_preset_file(path)
    show = Show(preset, facts, SR, base_dir=path.parent)
    actions = LiveActions(show, preset, path, errors=ErrorLog(), model_source="builtin:abstract",
                          model_fixed=False)
    return show, actions, []


def send(show, actions, errors, address, *args, at=0):
    routes.perform([ControlEvent(at, address, tuple(args))], show, actions,
                   on_error=lambda event, exc: errors.append(str(exc)))


def test_capture_takes_an_optional_safe_name():
    context = NamespaceContext()
    assert validate("/phosphene/keyframe/capture", [], context)[1] == ()
    assert validate("/phosphene/keyframe/capture", ["sunset"], context)[1] == ("sunset",)
    for bad in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(Rejected, match="not a name"):
            validate("/phosphene/keyframe/capture", [bad], context)
    assert validate("/phosphene/keyframe/save", [], context)[0].scope == "action"


def test_named_captures_are_saved_into_the_preset_keeping_its_comments(tmp_path, facts):
    path = tmp_path / "my-set.yaml"
    path.write_text(PRESET)
    show, actions, errors = live(path, facts)
    clock = run(show, 40)
    send(show, actions, errors, "/phosphene/keyframe/capture", "sunset", at=clock)
    clock = run(show, 40, clock)
    send(show, actions, errors, "/phosphene/keyframe/goto", 1, at=clock)
    clock = run(show, 200, clock)
    send(show, actions, errors, "/phosphene/keyframe/capture", at=clock)     # unnamed
    captured = show.captured_keyframes()
    assert [name for name, _ in captured] == ["sunset", None]
    keyframes_before = len(show.director.keyframes)
    assert keyframes_before == 5

    send(show, actions, errors, "/phosphene/keyframe/save", at=clock)
    assert errors == []
    # the files, next to the preset
    sunset = tmp_path / "keyframes" / "sunset.npy"
    unnamed = tmp_path / "keyframes" / "captured-1.npy"
    assert np.array_equal(np.load(sunset), captured[0][1])
    assert np.array_equal(np.load(unnamed), captured[1][1])
    # the preset: every line it had is still there, in order, plus the two entries
    text = path.read_text()
    assert text == PRESET.replace("  - seed: 3\n", "  - seed: 3\n  - w: keyframes/sunset.npy\n"
                                  "  - w: keyframes/captured-1.npy\n")
    # it loads back with the new keyframes, resolved to the captured w
    preset = load_preset_file(path)
    ws = resolve_keyframes(preset.keyframe_specs(), mapper=facts.mapper, z_dim=facts.z_dim,
                           num_ws=facts.num_ws, w_dim=facts.w_dim, base_dir=tmp_path)
    assert len(ws) == 5
    assert np.array_equal(ws[3], captured[0][1]) and np.array_equal(ws[4], captured[1][1])
    # the running show has them as the preset's own now: not twice, nothing left to save
    assert len(show.director.keyframes) == keyframes_before
    assert show.preset.keyframes[3].w == "keyframes/sunset.npy"
    assert show.captured_keyframes() == []
    assert actions.watcher.poll() is None                  # our own save: no reload
    send(show, actions, errors, "/phosphene/keyframe/save", at=clock)
    assert len(errors) == 1 and "nothing captured" in errors[0]

    # a later capture with a name that exists gets its own file
    run(show, 10, clock)
    send(show, actions, errors, "/phosphene/keyframe/capture", "sunset", at=clock + 10 * HOP)
    send(show, actions, errors, "/phosphene/keyframe/save", at=clock + 10 * HOP)
    assert (tmp_path / "keyframes" / "sunset-2.npy").is_file()
    assert path.read_text().endswith("  - w: keyframes/sunset-2.npy\n# the modes follow\n"
                                     "modes:\n  drift:\n    weight: 1.0       # keep moving\n")
    assert len(load_preset_file(path).keyframes) == 6


def test_a_hand_edit_after_a_save_does_not_duplicate_the_saved_keyframes(tmp_path, facts):
    path = tmp_path / "set.yaml"
    path.write_text(PRESET)
    show, actions, errors = live(path, facts)
    clock = run(show, 30)
    send(show, actions, errors, "/phosphene/keyframe/capture", "a", at=clock)
    send(show, actions, errors, "/phosphene/keyframe/save", at=clock)
    send(show, actions, errors, "/phosphene/keyframe/capture", "b", at=clock)   # not saved
    assert len(show.director.keyframes) == 5
    text = path.read_text().replace("weight: 1.0", "weight: 0.5")
    path.write_text(text)
    os.utime(path, ns=(1, 5_000_000_000))
    actions.poll_preset_file()
    assert show.preset.modes.drift.weight == 0.5
    assert len(show.director.keyframes) == 5              # 3 seeds + a (saved) + b (captured)
    assert [name for name, _ in show.captured_keyframes()] == ["b"]


def test_shipped_presets_are_never_written(facts, tmp_path):
    path = resolve_preset("default")
    before = path.read_bytes()
    show, actions, errors = live(path, facts)
    send(show, actions, errors, "/phosphene/keyframe/capture", "mine")
    send(show, actions, errors, "/phosphene/keyframe/save")
    assert len(errors) == 1
    assert "shipped preset" in errors[0] and "copy it to a folder of your own" in errors[0]
    assert path.read_bytes() == before
    assert not (path.parent / "keyframes").exists()


def test_keyframe_entries_follow_the_style_of_the_list():
    flow = "name: x\nkeyframes: [{seed: 1}, {seed: 2}]   # two\n"
    out = with_keyframes(flow, [{"w": "keyframes/a.npy"}])
    assert out == "name: x\nkeyframes: [{seed: 1}, {seed: 2}, {w: keyframes/a.npy}]   # two\n"
    block = "keyframes:\n-   seed: 1\n    # note\nname: x\n"
    out = with_keyframes(block, [{"w": "k/b c.npy"}])
    assert yaml.safe_load(out)["keyframes"][-1] == {"w": "k/b c.npy"}
    assert out.startswith("keyframes:\n-   seed: 1\n") and "# note" in out
    crlf = PRESET.replace("\n", "\r\n")
    out = with_keyframes(crlf, [{"w": "keyframes/a.npy"}])
    assert "\n" not in out.replace("\r\n", "") and "  - w: keyframes/a.npy\r\n" in out


# -- export / import ------------------------------------------------------------------------------
def test_export_and_import_round_trip_w_exactly(G, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PHOSPHENE_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "tiny.safetensors"
    save_generator(G, model, source="test")
    saved = np.random.default_rng(0).standard_normal((G.num_ws, G.w_dim)).astype(np.float32)
    np.save(tmp_path / "glow.npy", saved)
    (tmp_path / "set.yaml").write_text(
        f"model: {model}\nkeyframes:\n  - seed: 4\n  - slerp: [4, 9]\n    t: 0.25\n"
        "  - w: glow.npy\n  - seed: 4\n")
    library = tmp_path / "out" / "kf.npz"
    assert cli_main(["models", "keyframes", "export", str(tmp_path / "set.yaml"), "-o",
                     str(library), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "4 keyframes" in out and "glow" in out
    entries = load_library(library)
    assert list(entries) == ["seed-4", "slerp-4-9-0.25", "glow", "seed-4-2"]
    preset = load_preset_file(tmp_path / "set.yaml")
    mapper = mapper_from_generator(G)
    original = resolve_keyframes(preset.keyframe_specs(), mapper=mapper, z_dim=G.z_dim,
                                 num_ws=G.num_ws, w_dim=G.w_dim, base_dir=tmp_path)
    assert np.array_equal(entries["glow"], saved)
    # import: a preset names entries of the library
    imported = parse_preset(yaml.safe_load(
        "keyframes:\n" + "".join(f"  - w: out/kf.npz\n    key: {name}\n" for name in entries)))
    ws = resolve_keyframes(imported.keyframe_specs(), mapper=mapper, z_dim=G.z_dim,
                           num_ws=G.num_ws, w_dim=G.w_dim, base_dir=tmp_path)
    assert len(ws) == 4
    for a, b in zip(ws, original):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    assert cli_main(["models", "keyframes", "list", str(library)]) == 0
    assert "slerp-4-9-0.25" in capsys.readouterr().out


def test_library_entries_are_picked_by_key_with_clear_errors(tmp_path):
    a, b = np.zeros((4, 8), np.float32), np.ones((4, 8), np.float32)
    save_library(tmp_path / "lib.npz", [("a", a), ("b", b)])
    assert np.array_equal(load_w("lib.npz", num_ws=4, w_dim=8, base_dir=tmp_path, key="b"), b)
    with pytest.raises(PhospheneError, match=r"holds 2 keyframes; pick one with key: \(one of a"):
        load_w(tmp_path / "lib.npz", num_ws=4, w_dim=8)
    with pytest.raises(PhospheneError, match="has no keyframe 'c'; it holds: a, b"):
        load_w(tmp_path / "lib.npz", num_ws=4, w_dim=8, key="c")
    save_library(tmp_path / "one.npz", [("only", a)])
    assert np.array_equal(load_w(tmp_path / "one.npz", num_ws=4, w_dim=8), a)
    with pytest.raises(PhospheneError, match="not found"):
        load_library(tmp_path / "missing.npz")
    np.save(tmp_path / "single.npy", a)
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(PhospheneError, match="not a numpy .npz"):
        load_library(tmp_path / "single.npz")


def test_the_stage_overlay_names_projected_and_library_keyframes():
    from phosphene.live.runtime.overlay_info import keyframe_label

    preset = parse_preset(yaml.safe_load(
        "keyframes:\n  - project: photos/sea.png\n  - w: lib/kf.npz\n    key: dawn\n"))
    assert keyframe_label(preset, 0) == "projected sea.png"
    assert keyframe_label(preset, 1) == "w: kf.npz [dawn]"
