"""``phosphene bench gpu``: the harness runs end to end on the CPU (``--device cpu --quick``),
records every section, and refuses plainly without CUDA. The CUDA-only checks run on a GPU
machine; here we check that the harness reaches them, records them and would flag a mismatch."""

import json
import math
import subprocess
import sys

import pytest
import torch

from phosphene.live.runtime.bench_gpu import format_markdown, run_gpu_bench
from phosphene.models.bench_gpu import _diff

SECTIONS = ("correctness", "synthesis", "live", "offline")
CHECKS = ("cuda_vs_cpu_fp32", "fp16_vs_fp32", "graph_vs_eager", "compiled_vs_eager",
          "compiled_other_thread", "upload_vs_host_copy")


def _phosphene(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "phosphene", *args], capture_output=True,
                          text=True, timeout=timeout)


def _recorded(entry):
    """Figures, or a skip/error that says why."""
    return entry["status"] in ("ok", "pass") or bool(entry.get("reason") or entry.get("error"))


def test_quick_cpu_run_records_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    done = _phosphene("bench", "gpu", "--device", "cpu", "--quick", "-o", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["quick"] is True and r["device"] == "cpu"
    assert set(r["sections"]) == set(SECTIONS)
    for name in SECTIONS:
        assert r["sections"][name]["status"] == "ok", (name, r["sections"][name])

    checks = r["sections"]["correctness"]["checks"]
    assert set(checks) == set(CHECKS)
    for name, check in checks.items():
        assert _recorded(check), (name, check)
        if check["status"] in ("pass", "fail"):
            assert math.isfinite(check["max_abs_diff"]), (name, check)
            assert check["max_abs_diff"] <= check["tolerance"]
    # what the CPU cannot run is skipped with its reason; what it can is checked
    for name in ("cuda_vs_cpu_fp32", "fp16_vs_fp32", "graph_vs_eager"):
        assert checks[name]["status"] == "skipped" and checks[name]["reason"]
    assert checks["upload_vs_host_copy"]["status"] == "pass"
    assert checks["upload_vs_host_copy"]["texture_max_abs_diff"] == 0
    assert checks["compiled_vs_eager"]["status"] in ("pass", "skipped")   # no compiler: skipped
    # the live engine's threads: compiled on one, called on another, the same frame
    assert checks["compiled_other_thread"]["status"] == checks["compiled_vs_eager"]["status"]
    if checks["compiled_vs_eager"]["status"] == "pass":
        # a "compiled" timing is of compiled code: none of its calls fell back to eager
        compiled_rows = [row for row in r["sections"]["synthesis"]["rows"]
                         if row["variant"] == "compiled"]
        assert compiled_rows and all(row["compiled"] and not row.get("ran_eager")
                                     for row in compiled_rows)
    assert r["all_checks_pass"] is True

    synthesis = r["sections"]["synthesis"]
    references = [row for row in synthesis["rows"] if row["variant"] == "reference"]
    assert {row["net"] for row in references} == {
        "config-f@16 (32 ch, quick)", "builtin:abstract@16 (quick)"}
    assert {row["batch"] for row in references} == {1, 2}
    for row in synthesis["rows"]:
        assert row["ms_per_frame"] > 0 and row["speedup_vs_reference"] > 0
    assert all(row["speedup_vs_reference"] == 1.0 for row in references)
    assert synthesis["skipped"] and all(_recorded({"status": "skipped", **s})
                                        for s in synthesis["skipped"])

    live = r["sections"]["live"]
    assert live["latency"]["status"] == "ok" and live["latency"]["gan_path_ms"]["n"] > 0
    assert live["effect_chain"]["status"] == "ok" and live["effect_chain"]["frames_per_s"] > 0
    assert _recorded(live["realtime"])
    offline = r["sections"]["offline"]
    assert offline["frames"] == 30 and offline["x_real_time"] > 0

    assert "| upload_vs_host_copy | pass |" in done.stdout
    assert "all checks pass" in done.stdout
    assert "[offline]" in done.stderr            # progress lines as it goes


def test_an_exhausted_budget_records_every_section_as_skipped(tmp_path):
    out = tmp_path / "gpu.json"
    r = run_gpu_bench("cpu", quick=True, budget_s=1e-6, output=out, progress=lambda line: None)
    assert json.loads(out.read_text())["sections"] == r["sections"]
    for name in SECTIONS:
        assert r["sections"][name]["status"] == "skipped"
        assert "budget" in r["sections"][name]["reason"]
    assert r["all_checks_pass"] is False          # nothing checked is not a pass
    assert "CHECKS FAILED" in format_markdown(r)


def test_a_disagreeing_check_fails():
    ref = torch.linspace(-1, 1, 48).reshape(1, 3, 4, 4)
    assert _diff(ref.clone(), ref, 1e-3)["status"] == "pass"
    assert _diff(ref + 0.01, ref, 1e-3)["status"] == "fail"
    broken = ref.clone()
    broken[0, 0, 0, 0] = float("nan")
    assert _diff(broken, ref, 1e-3)["status"] == "fail"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_in_one_line():
    done = _phosphene("bench", "gpu", timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0], done.stderr
    assert done.stdout == ""
    refused = _phosphene("bench", "gpu", "--device", "cpu", timeout=120)
    assert refused.returncode == 2 and "--quick" in refused.stderr   # a usage error


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    from phosphene.live.runtime import bench_gpu

    def broken(*args):
        raise RuntimeError("driver on fire")

    monkeypatch.setattr(bench_gpu, "run_correctness", broken)
    for name in ("run_synthesis", "run_live", "run_offline"):
        monkeypatch.setattr(bench_gpu, name, lambda *args: {"figures": 1})
    r = run_gpu_bench("cpu", quick=True, budget_s=60, output=tmp_path / "gpu.json",
                      progress=lambda line: None)
    assert r["sections"]["correctness"]["status"] == "error"
    assert "driver on fire" in r["sections"]["correctness"]["reason"]
    for name in ("synthesis", "live", "offline"):
        assert r["sections"][name] == {**r["sections"][name], "status": "ok", "figures": 1}
    assert r["all_checks_pass"] is False


def test_on_a_gpu_the_goal_case_is_compiled_first():
    from phosphene.models.bench_gpu import SynthesisBench

    cases = SynthesisBench(torch.device("cpu"), quick=False)._cases([1, 8])
    compiled = [c for c in cases if c[2] == "compiled"]
    assert compiled[0] == ("config-f@1024", 1, "compiled", True)
    assert cases.index(compiled[0]) == len(cases) - len(compiled)    # after every cheap case
    cheap = [c for c in cases if c[2] != "compiled"]
    for label in ("config-f@256", "config-f@512", "config-f@1024", "builtin:abstract"):
        for batch in (1, 8):
            assert cheap.index((label, batch, "reference", False)) < \
                cheap.index((label, batch, "graph", True))
