"""`phosphene effects` and `phosphene bench render` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

from phosphene.render.effects import BUILTIN_ORDER, builtin_effects


def phosphene(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "phosphene", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_effects_lists_every_effect_with_range_and_default():
    out = phosphene("effects")
    assert out.returncode == 0, out.stderr
    for spec in builtin_effects():
        assert f"{spec.name}: " in out.stdout
        for p in spec.params:
            line = next(ln for ln in out.stdout.splitlines()
                        if ln.strip().startswith(f"{spec.name}.{p.name} "))
            assert f"{p.minimum:g}..{p.maximum:g}" in line and f"default {p.default:g}" in line


def test_effects_json():
    out = phosphene("effects", "--json")
    data = json.loads(out.stdout)
    assert [e["name"] for e in data] == list(BUILTIN_ORDER)
    flash = next(e for e in data if e["name"] == "flash")
    assert {"name": "amount", "min": 0.0, "max": 1.0, "default": 0.0}.items() <= \
        flash["params"][0].items()


def test_effects_check_reports_the_compiler_error_with_the_file(tmp_path):
    good = tmp_path / "good.glsl"
    good.write_text("// effect: good\n// param gain 0 2 1  gain\nuniform float gain;\n"
                    "void main() { f_color = texture(u_source, v_uv) * gain; }\n")
    bad = tmp_path / "bad.glsl"
    bad.write_text("// effect: bad\nvoid main() {\n  f_color = vec4(nope);\n}\n")
    out = phosphene("effects", "--check", str(good), str(bad))
    assert out.returncode == 1
    assert f"OK   {good}  params: good.gain" in out.stdout
    assert f"FAIL {bad}" in out.stdout and f"{bad}:3:" in out.stdout and "nope" in out.stdout


def test_bench_render_prints_a_row_per_size():
    out = phosphene("bench", "render", "--sizes", "64x36,32x18", "--frames", "2",
                    "--frame-size", "16")
    assert out.returncode == 0, out.stderr
    assert "llvmpipe" in out.stdout or "renderer:" in out.stdout
    rows = [ln.split() for ln in out.stdout.splitlines() if ln.strip().startswith(("64x", "32x"))]
    assert [r[0] for r in rows] == ["64x36", "32x18"]
    assert all(len(r) == 7 and all(float(v) >= 0 for v in r[1:]) for r in rows)


def test_unknown_effect_is_a_one_line_error():
    out = phosphene("effects", "--check", "/nonexistent/x.glsl")
    assert out.returncode == 1
    assert "cannot read effect shader /nonexistent/x.glsl" in out.stdout
