"""`phosphene bench motion`: what its layout measure counts as motion, and that the command
runs end to end (its figures are a benchmark, kept in docs/benchmarks.md, not asserted)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from synth_audio import sectioned_song
from phosphene.cli import main
from phosphene.live.runtime.motion import distance, layout


def fields(seed=0, side=64):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (4, 4, 3))
    return np.kron(coarse, np.ones((side // 4, side // 4, 1))).astype(np.uint8)


def test_a_flash_or_a_fade_is_not_motion_a_new_picture_is():
    picture = fields(0)
    flashed = np.clip(picture.astype(int) + 40, 0, 255).astype(np.uint8)
    faded = (picture * 0.5).astype(np.uint8)
    assert distance(layout(picture), layout(flashed)) < 0.08
    assert distance(layout(picture), layout(faded)) < 0.05
    other = distance(layout(picture), layout(fields(1)))
    assert 0.7 < other < 1.3                  # unrelated pictures: about 1
    moved = np.roll(picture, 16, axis=1)
    assert distance(layout(picture), layout(moved)) > 0.3


def test_bench_motion_runs_and_reports_scene_changes_at_the_sections(tmp_path, capsys):
    x, starts = sectioned_song([("pad", 2), ("groove", 2)], sr=22050)
    audio = tmp_path / "two.flac"
    sf.write(audio, x, 22050)
    (tmp_path / "two.sections.json").write_text(json.dumps(
        {"bpm": 120, "sections": [{"name": "pad", "start_s": 0.0},
                                  {"name": "groove", "start_s": starts[1]}]}))
    out = tmp_path / "motion.json"
    assert main(["bench", "motion", str(audio), "--preset", "notebook", "--fps", "5",
                 "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| notebook | two.flac (8 s) |" in table
    [result] = json.loads(out.read_text())
    assert 0.0 <= result["near_static"] <= 1.0 and result["seed_distance"] > 0.3
    assert [b["section"] for b in result["boundaries"]] == ["groove"]
