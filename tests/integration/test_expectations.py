"""Expectations and leaks, really run: exit 1 with what was expected and what was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, run_workbench

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
REFERENCE = (ROOT / "scenarios" / "arrow-intvector.yaml").read_text()


def with_expectations(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expecting.yaml"
    path.write_text(REFERENCE.replace("name: arrow-intvector", "name: expecting") + text)
    return path


def test_expectations_that_hold_exit_0_and_are_in_the_report(tmp_path: Path) -> None:
    scenario = with_expectations(tmp_path, """expect:
  - at: allocated
    arrow.allocated_bytes: {eq: 512KiB}
  - at: allocator-closed
    arrow.allocated_bytes: {eq: 0}
    nmt.categories.Other.committed_bytes: {ge: 4MiB}
  - at: filled
    delta: baseline
    process.anon_rss_bytes: {lt: 256MiB, gt: 400000}
  - checks.sum: {eq: 9999900000}
    status: {eq: ok}
  - leaks: none
""")
    out = tmp_path / "run"
    result = run_workbench("run", str(scenario), "--hold", "0", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((out / "report.json").read_text())["expectations"]
    assert len(results) == 8 and all(r["ok"] for r in results)
    assert results[0]["measured"] == 524288
    delta = next(r for r in results if r["delta"] == "baseline" and r["op"] == "gt")
    assert delta["measured"] > 400000 and delta["path"] == "process.anon_rss_bytes"


def test_a_failed_expectation_exits_1_with_expected_and_measured(tmp_path: Path) -> None:
    scenario = with_expectations(tmp_path, "expect:\n  - at: filled\n    arrow.allocated_bytes: {lt: 100KiB}\n")
    result = run_workbench("run", str(scenario), "--hold", "0", "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "at filled: arrow.allocated_bytes < 100KiB" in result.stdout
    assert "524,288" in result.stdout
    assert result.stderr.strip() == (
        "workbench: 1 of 1 expectations of expecting failed: at filled: arrow.allocated_bytes < 100KiB "
        "(measured 524288)"
    )


def test_leak_is_found_reported_with_its_buffers_and_fails_the_no_leaks_expectation(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_workbench("run", "intvector-leak", "--hold", "0", "--out", str(out))
    assert result.returncode == 1, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok"  # the run itself did not crash on Arrow's "Memory was leaked"
    (leak,) = report["leaks"]
    assert leak["allocator"] == "root" and leak["bytes"] == 524288
    assert "ArrowBuf" in leak["detail"] and "capacity:524288" in leak["detail"]
    assert [s["label"] for s in report["snapshots"]] == ["baseline", "one-closed", "allocator-closed"]
    assert report["snapshots"][-1]["arrow"]["allocated_bytes"] == 524288
    failed = [r for r in report["expectations"] if not r["ok"]]
    assert [(r["path"], r["measured"]) for r in failed] == [("leaks", "root: 524,288 B")]
    assert "Leak: allocator 'root' still holds 524,288 B" in result.stdout


def test_validate_checks_files_without_running_them() -> None:
    bad = sorted((ROOT / "tests" / "unit" / "bad_scenarios").glob("*.yaml"))
    result = run_workbench("validate", *map(str, bad), str(ROOT / "scenarios" / "arrow-intvector.yaml"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(bad) and "Traceback" not in result.stderr
    assert result.stdout.strip().endswith("arrow-intvector.yaml: ok (arrow-intvector, 14 steps, 0 expectations)")


def test_pytest_plugin_runs_an_inline_scenario_under_a_chosen_allocator(workbench_run) -> None:  # type: ignore[no-untyped-def]
    from workbench.pytest_plugin import assert_layer, measured

    report = workbench_run({
        "name": "inline", "description": "a vector of 1,000,000 ints", "allocation_manager": "unsafe",
        "steps": [{"root_allocator": {}}, {"snapshot": "baseline"}, {"allocate": {"vector": "v", "count": 1_000_000}},
                  {"fill": {"vector": "v", "k": 1}}, {"snapshot": "filled"}, {"close": "v"}, {"close": "root"}],
    }, allocator="glibc")
    assert report.allocator.backend == "glibc"
    # 4,000,000 bytes of values + 125,000 of validity, rounded up to the next power of two.
    assert measured(report, "arrow.allocated_bytes", at="filled") == 4 * 1024 * 1024
    assert_layer(report, "arrow.allocated_bytes", at="filled", eq="4MiB")
    assert_layer(report, "process.anon_rss_bytes", at="filled", delta="baseline", ge=4_000_000, lt="512MiB")
    with pytest.raises(AssertionError, match=r"arrow.allocated_bytes at 'filled': expected lt 1MiB, measured 4194304"):
        assert_layer(report, "arrow.allocated_bytes", at="filled", lt="1MiB")
