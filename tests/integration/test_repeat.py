"""`--repeat N` and what `diff` makes of repeated runs (#13), really run."""

from __future__ import annotations

import json
from pathlib import Path

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
