"""The command line as a user meets it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import JDK17, by_label, run_workbench


def assert_one_line_error(stderr: str, *parts: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("workbench: ")
    assert "Traceback" not in stderr
    for part in parts:
        assert part in lines[0], lines[0]


def test_unknown_scenario_name_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = run_workbench("run", "no-such-scenario", "--json", str(out))
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "no-such-scenario: no bundled scenario", "arrow-intvector")
    assert not out.exists()


def test_bad_scenario_file_names_file_line_and_field(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: bad\ndescription: d\nsteps:\n  - root_allocator: {}\n  - allocate: {vector: v, count: -5}\n")
    out = tmp_path / "r.json"
    result = run_workbench("run", str(scenario), "--json", str(out))
    assert result.returncode == 2
    assert_one_line_error(result.stderr, f"{scenario}:5: steps[1].allocate.count: input should be greater than or equal to 0")
    assert not out.exists() and list(tmp_path.iterdir()) == [scenario]


def test_unknown_allocator_exits_2() -> None:
    result = run_workbench("run", "arrow-intvector", "--allocator", "hoard")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "--allocator hoard: unknown allocator", "jemalloc, system:jemalloc, tcmalloc, system:tcmalloc, mimalloc, system:mimalloc, glibc")


def test_missing_library_path_exits_2() -> None:
    result = run_workbench("run", "arrow-intvector", "--allocator", "/nonexistent/libfoo.so")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "/nonexistent/libfoo.so: no such file")


def test_bad_java_home_and_bad_hold_and_bad_json_target_exit_2(tmp_path: Path) -> None:
    result = run_workbench("run", "arrow-intvector", "--java-home", str(tmp_path))
    assert result.returncode == 2
    assert_one_line_error(result.stderr, f"--java-home {tmp_path}: no lib/server/libjvm.so")
    result = run_workbench("run", "arrow-intvector", "--hold", "a while")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "--hold: expected a duration")
    result = run_workbench("run", "arrow-intvector", "--json", str(tmp_path / "missing" / "r.json"))
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "does not exist")


def test_usage_errors_exit_2() -> None:
    result = run_workbench("run")
    assert result.returncode == 2
    assert "Missing argument 'scenario'" in result.stderr
    result = run_workbench("run", "arrow-intvector", "--no-such-option")
    assert result.returncode == 2


def test_scenarios_lists_the_bundled_ones() -> None:
    result = run_workbench("scenarios")
    assert result.returncode == 0
    assert "arrow-intvector" in result.stdout and "RootAllocator" in result.stdout


@pytest.mark.jvm
def test_terminal_report_shows_the_layers_side_by_side() -> None:
    result = run_workbench("run", "arrow-intvector", "--hold", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    header = next(line for line in out.splitlines() if "baseline" in line and "allocator-closed" in line)
    assert header.index("baseline") < header.index("allocated") < header.index("vector-closed")
    for row in ["allocated (accounted)", "Other committed", "resident", "anonymous RSS"]:
        assert row in out
    assert "+512.0 KiB" in out and "+4.0 MiB" in out
    assert "Arrow accounts 524,288 B at 'allocated' for 412,500 B" in out
    assert "sum 9,999,900,000" in out
    assert result.stderr == ""


@pytest.mark.jvm
def test_a_java_exception_fails_the_run_with_exit_3_and_keeps_the_snapshots(tmp_path: Path) -> None:
    scenario = tmp_path / "limit.yaml"
    scenario.write_text(
        "name: limit\ndescription: a vector larger than its allocator's limit\n"
        "steps:\n  - root_allocator: {name: root, limit: 100KiB}\n  - snapshot: baseline\n"
        "  - allocate: {vector: v, count: 100000}\n  - snapshot: never\n"
    )
    out = tmp_path / "r.json"
    result = run_workbench("run", str(scenario), "--json", str(out), "--allocator", "glibc")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "workbench: scenario limit failed: org.apache.arrow.memory.OutOfMemoryException" in result.stderr
    report = json.loads(out.read_text())
    assert report["status"] == "failed"
    assert report["error"]["type"] == "org.apache.arrow.memory.OutOfMemoryException"
    assert "Unable to allocate buffer" in report["error"]["message"] and report["error"]["step"] == 2
    assert list(by_label(report)) == ["baseline"]
    assert Path(report["worker_log"]).is_file()


@pytest.mark.jvm
def test_second_run_needs_neither_maven_nor_a_compiler(tmp_path: Path) -> None:
    # Everything a run builds is cached by the session's first run: with no mvn, gcc or apt on PATH it still works.
    result = run_workbench("run", "arrow-intvector", "--hold", "0", "--no-html", "--out", str(tmp_path / "run"),
                           env={"PATH": str(tmp_path), "JAVA_HOME": str(JDK17)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["allocator"]["provenance"]["kind"] == "built"
