"""`workbench compare` and the churn scenario, really run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import by_label, run_json, run_workbench

pytestmark = [pytest.mark.jvm, pytest.mark.slow]


def test_compare_glibc_and_jemalloc_gives_both_reports_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    result = run_workbench("compare", "arrow-intvector", "--allocators", "glibc,jemalloc", "--hold", "0",
                           "--json", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["schema"] == "workbench.compare/1" and data["scenario"] == "arrow-intvector"
    assert [run["allocator"] for run in data["runs"]] == ["glibc", "jemalloc"]
    glibc, jemalloc = (run["report"] for run in data["runs"])
    for report in (glibc, jemalloc):
        assert report["schema"] == "workbench.report/1" and report["status"] == "ok"
        assert by_label(report)["allocated"]["arrow"]["allocated_bytes"] == 524288
    assert glibc["allocator"]["backend"] == "glibc" and jemalloc["allocator"]["backend"] == "jemalloc"
    g, j = by_label(glibc)["filled"]["allocator"], by_label(jemalloc)["filled"]["allocator"]
    assert g["allocated_bytes"] > 0 and g["mapped_bytes"] > 0
    assert g["resident_bytes"] is None and g["retained_bytes"] is None and g["active_bytes"] is None
    assert all(j[k] is not None for k in ("allocated_bytes", "active_bytes", "resident_bytes", "retained_bytes"))
    # The terminal shows one table per snapshot label, one column per allocator.
    assert "vector-closed" in result.stdout and "allocator resident" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "glibc" in line and "jemalloc" in line)
    assert header.index("glibc") < header.index("jemalloc")


def test_compare_with_malloc_conf_per_allocator(tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    result = run_workbench("compare", "arrow-intvector", "-a", "jemalloc@narenas:1,background_thread:true",
                           "--hold", "0", "--json", str(out))
    assert result.returncode == 0, result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["allocator"] == "jemalloc@narenas:1,background_thread:true"
    assert run["report"]["allocator"]["malloc_conf"] == "narenas:1,background_thread:true"
    # jemalloc took the configuration: one arena (plus the huge-allocation arena jemalloc 5 adds), and the one the
    # workbench made for its own allocations.
    raw = by_label(run["report"])["filled"]["allocator"]["raw"]
    assert raw["workbench_arenas"] == 1 and raw["narenas"] - raw["workbench_arenas"] <= 2


def test_compare_bad_allocator_fails_before_any_run() -> None:
    result = run_workbench("compare", "arrow-intvector", "--allocators", "glibc,hoard")
    assert result.returncode == 2
    assert "running" not in result.stdout
    assert result.stderr.strip() == (
        "workbench: --allocator hoard: unknown allocator (expected one of: jemalloc, system:jemalloc, tcmalloc, "
        "system:tcmalloc, mimalloc, system:mimalloc, glibc, or a path to a .so)"
    )


def test_churn_scenario_keeps_survivors_then_gives_everything_back(tmp_path: Path) -> None:
    report: dict[str, Any] = run_json(tmp_path, "intvector-churn-threads", "--hold", "0")
    assert report["jvm"]["allocation_manager"] == "unsafe"
    churn = report["step_results"][0]
    assert churn["event"] == "churn" and churn["keep"] == "survivors"
    assert churn["allocations"] >= 1000 and churn["survivors"] >= churn["allocations"] // 64 - 4
    snaps = by_label(report)
    kept = snaps["churned"]["arrow"]["allocated_bytes"]
    # Each survivor holds 1,024-4,095 ints: 4 KiB to 16 KiB of values, rounded up to 8 KiB-32 KiB by Arrow.
    assert churn["survivors"] * 8192 <= kept <= churn["survivors"] * 32768
    assert snaps["closed"]["arrow"]["allocated_bytes"] == 0
    assert snaps["churned"]["arrow"]["peak_bytes"] > kept
