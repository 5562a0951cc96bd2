"""`--repeat N` and what `diff` makes of repeated runs (#13), really run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_workbench

pytestmark = [pytest.mark.jvm, pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "arrow-intvector.yaml"


def _run(out: Path, *args: str) -> dict[str, object]:
    result = run_workbench("run", *args, "--hold", "200ms", "--no-html", "--quiet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads((out / "report.json").read_text())
    return data


def test_repeated_runs_keep_every_run_and_diff_tells_noise_from_a_doubled_vector(tmp_path: Path) -> None:
    # Five, not three: runs are bimodal (a JIT compilation running at a snapshot or not moves allocator allocated by
    # ~4 MiB), and two --repeat 3 runs whose three runs each all fell on one side failed 1 of 4 tries here.
    a = _run(tmp_path / "a", "arrow-intvector", "--repeat", "5")
    _run(tmp_path / "b", "arrow-intvector", "--repeat", "5")
    repeats = a["repeats"]
    assert isinstance(repeats, dict)
    assert repeats["count"] == 5 and repeats["statuses"] == ["ok"] * 5
    assert [Path(p).name for p in repeats["runs"]] == [f"repeat-{k}" for k in range(1, 6)]
    for run in repeats["runs"]:
        assert json.loads((Path(run) / "report.json").read_text())["status"] == "ok"
    by_place = {(s["label"], s["figure"]): s for s in repeats["figures"]}
    arrow = by_place[("allocated", "arrow.allocated_bytes")]
    assert arrow["values"] == [524288] * 5 and arrow["median"] == arrow["min"] == arrow["max"] == 524288
    rss = by_place[("held", "process.anon_rss_bytes")]
    assert rss["min"] <= rss["median"] <= rss["max"] and sorted(rss["values"])[2] == rss["median"]
    # The report around the spread is the median run's.
    shown = json.loads((Path(repeats["runs"][repeats["shown"]]) / "report.json").read_text())
    assert shown["snapshots"][-1]["process"] == a["snapshots"][-1]["process"]  # type: ignore[index]

    same = run_workbench("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-over", "10")
    assert same.returncode == 0, same.stdout
    assert "noise" in same.stdout

    doubled = tmp_path / "doubled.yaml"
    doubled.write_text(SCENARIO.read_text().replace("count: 100000", "count: 200000"))
    _run(tmp_path / "c", str(doubled))
    grew = run_workbench("diff", str(tmp_path / "a"), str(tmp_path / "c"), "--fail-over", "10")
    assert grew.returncode == 1, grew.stdout
    assert "allocated/arrow.allocated_bytes" in grew.stderr


PROGRAM = Path(__file__).resolve().parent / "programs" / "RepeatedMain.java"
KEPT = 8 * 1024 * 1024 + 77_777  # RepeatedMain's direct buffer, argument 1


def _exec(out: Path, classes: Path, factor: int = 1) -> dict[str, Any]:
    result = run_workbench("exec", "--repeat", "3", "--no-html", "--quiet", "--out", str(out), "--",
                           "java", "-cp", str(classes), "RepeatedMain", str(factor))
    assert result.returncode == 0, result.stderr
    # Each repeat is a fresh run of the program: it printed its line three times, into the program's own stdout.
    assert result.stdout.splitlines() == [f"kept {8 * 1024 * 1024 * factor + 77_777}"] * 3
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


def test_exec_repeat_keeps_every_program_run_and_diff_tells_noise_from_a_doubled_buffer(tmp_path: Path) -> None:
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(PROGRAM)], check=True)
    a = _exec(tmp_path / "a", classes)
    repeats = a["repeats"]
    assert repeats["count"] == 3 and repeats["statuses"] == ["ok"] * 3
    assert [Path(p).name for p in repeats["runs"]] == ["repeat-1", "repeat-2", "repeat-3"]
    runs = [json.loads((Path(p) / "report.json").read_text()) for p in repeats["runs"]]
    # Three programs, three JVMs: three process ids, each run with its start and exit snapshots.
    assert len({run["program"]["pid"] for run in runs}) == 3
    assert all([s["label"] for s in run["snapshots"]] == ["start", "exit"] for run in runs)
    by_place = {(s["label"], s["figure"]): s for s in repeats["figures"]}
    other = by_place[("exit", "nmt.categories.Other.committed_bytes")]
    # Every run's own figure is kept, in run order, and the direct buffer is in each (NMT Other: the buffer and 7 B
    # of the JVM's own, measured; the start's 2,048 B freed by then. With the agent's socket served in Java, its NIO
    # buffers added 16 KiB to both.)
    assert other["values"] == [run["snapshots"][-1]["nmt"]["categories"]["Other"]["committed_bytes"] for run in runs]
    for value, run in zip(other["values"], runs):
        start, exit_ = run["snapshots"]
        assert start["nmt"]["categories"]["Other"]["committed_bytes"] < 64 * 1024
        assert KEPT <= value <= KEPT + 64 * 1024
        direct = exit_["jvm_runtime"]["buffer_pools"]["direct"]
        assert direct["count"] == 1 and direct["total_capacity_bytes"] == KEPT  # the program's, and no agent's
    assert other["min"] <= other["median"] <= other["max"] and sorted(other["values"])[1] == other["median"]
    rss = by_place[("exit", "process.anon_rss_bytes")]
    assert rss["values"] == [run["snapshots"][-1]["process"]["anon_rss_bytes"] for run in runs]
    shown = runs[repeats["shown"]]
    assert shown["snapshots"][-1]["process"] == a["snapshots"][-1]["process"]  # the report is the median run's
    assert sorted(rss["values"])[1] == rss["median"] == a["snapshots"][-1]["process"]["anon_rss_bytes"]

    _exec(tmp_path / "b", classes)
    same = run_workbench("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-over", "10")
    assert same.returncode == 0, same.stdout + same.stderr

    _exec(tmp_path / "c", classes, 2)  # a 16 MiB buffer: outside the spread of either side
    grew = run_workbench("diff", str(tmp_path / "a"), str(tmp_path / "c"), "--fail-over", "10")
    assert grew.returncode == 1, grew.stdout
    assert "exit/nmt.categories.Other.committed_bytes" in grew.stderr
