"""Run directories, the sampled timeline, the ledger, `workbench report` and `workbench diff`, really run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import ROOT, by_label, run_workbench
from workbench.report.ledger import explain_line, line_label
from workbench.report.model import report_from_dict

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
LABELS = ["baseline", "allocated", "filled", "held", "vector-closed", "allocator-closed"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "reference"
    result = run_workbench("run", "arrow-intvector", "--hold", "2s", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def load(run: Path) -> dict[str, Any]:
    return json.loads((run / "report.json").read_text())  # type: ignore[no-any-return]


def test_run_directory_holds_the_report_and_the_raw_evidence(run_dir: Path) -> None:
    report = load(run_dir)
    assert report["run_dir"] == str(run_dir.resolve())
    for name in ["report.json", "samples.jsonl", "timeline.parquet", "worker.log"]:
        assert (run_dir / name).is_file(), name
    for label in LABELS:
        assert (run_dir / "nmt" / f"{label}.txt").read_text().lstrip().startswith("Native Memory Tracking")
        assert "Rss:" in (run_dir / "smaps" / f"{label}.txt").read_text()
        stats = json.loads((run_dir / "allocator" / f"{label}.json").read_text())
        assert stats["jemalloc"]["version"] == report["allocator"]["version"]
        # Kept without jemalloc's per-arena statistics (docs/run-directories.md): the merged arena only.
        assert list(stats["jemalloc"]["stats.arenas"]) == ["merged"]
        assert stats["jemalloc"]["stats"]["allocated"] > 0 and stats["jemalloc"]["stats.arenas"]["merged"]["bins"]


def test_timeline_has_one_row_per_interval_and_sees_the_vector(run_dir: Path) -> None:
    report = load(run_dir)
    sampler = report["sampler"]
    assert sampler["interval_ms"] == 100
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    # A 2-second hold alone is about 20 intervals; the whole scenario a few more.
    assert sampler["steps_ms"] / 100 * 0.8 <= len(rows) <= sampler["steps_ms"] / 100 + 2
    assert sampler["samples"] == len(rows)
    hold_step = 8  # the scenario's `hold` step (index in steps)
    during_hold = [r for r in rows if r["step"] == hold_step]
    assert len(during_hold) >= 15
    assert {r["arrow_allocated_bytes"] for r in during_hold} == {524288}
    assert all(r["anon_rss_bytes"] > 0 and r["allocator_resident_bytes"] > 0 for r in rows)
    with_nmt = [r for r in rows if r["nmt_committed_bytes"] is not None]
    assert 1 <= len(with_nmt) <= len(rows) // 10 + 1
    table = pq.read_table(run_dir / "timeline.parquet")
    assert table.num_rows == len(rows)
    assert str(table.schema.field("anon_rss_bytes").type) == "int64"
    assert table.column("arrow_allocated_bytes").to_pylist() == [r["arrow_allocated_bytes"] for r in rows]


def test_ledger_sums_exactly_at_every_snapshot(run_dir: Path) -> None:
    report = load(run_dir)
    for snap in report["snapshots"]:
        ledger, deltas = snap["reconciliation"], snap["deltas"]
        lines = ledger["lines"]
        for line, following in zip(lines, lines[1:]):
            assert line["delta_to_next"] == following["bytes"] - line["bytes"], (snap["label"], line["figure"])
        assert lines[-1]["figure"] == "process.anon_rss_bytes" and lines[-1]["reason"] is None
        assert ledger["allocator_figure"] is None  # jemalloc's mappings are found by address: nothing is claimed
        assert lines[-1]["bytes"] == deltas["process.anon_rss_bytes"]
        jvm_mapped = deltas["nmt.total_committed_bytes"] - deltas["nmt.malloc_total_bytes"]
        assert ledger["jvm_mapped_bytes"] == jvm_mapped
        # By address: the owners' changes add up to the anonymous RSS change exactly; jemalloc's own mappings (the
        # ranges it recorded) are an owner with the kernel's bytes, its own figures beside them; what is unexplained
        # is the anonymous mappings no owner was found for (pymalloc is off: no pools to subtract), less the workbench's
        # snapshot buffers.
        owners = {o["owner"]: o["delta_bytes"] or 0 for o in ledger["owners"]}
        assert sum(owners.values()) == deltas["process.anon_rss_bytes"], snap["label"]
        assert snap["attribution"]["allocator_mappings"] == "recorded" and ledger["malloc"] is None
        layer = ledger["malloc_layer"]
        assert layer["kernel_delta"] == owners["malloc-arenas"]
        assert layer["resident_delta"] == deltas["allocator.resident_bytes"]
        assert ledger["python_pools_delta"] is None
        # The snapshot reader's own region is named (measured by address), the rest of those mappings unexplained.
        assert isinstance(ledger["workbench_delta"], int)
        assert ledger["unexplained_bytes"] == owners["anonymous-mmaps"] - ledger["workbench_delta"]
    allocated = by_label(report)["allocated"]["reconciliation"]["lines"]
    other = by_label(report)["allocated"]["deltas"]["nmt.categories.Other.committed_bytes"]
    assert [(line["figure"], line["bytes"], line["delta_to_next"], line["reason"]) for line in allocated[:3]] == [
        ("arrow.requested_bytes", 412500, 111788, "arrow-rounding"),
        ("arrow.allocated_bytes", 524288, other - 524288, "netty-chunks"),
        ("nmt.categories.Other.committed_bytes", other, allocated[3]["bytes"] - other, "jvm-mallocs"),
    ]
    # The sentences are the renderers' (from the codes), not the JSON's.
    assert "KiB" not in json.dumps(report["snapshots"]) and "explanation" not in json.dumps(report["snapshots"])
    loaded = report_from_dict(report).snapshot("allocated").reconciliation
    assert loaded is not None
    assert explain_line(loaded.lines[0], loaded) == "+109.2 KiB: Arrow rounds each buffer up to a power of two"
    assert line_label(loaded.lines[1]) == "Arrow: accounted"


def test_report_renders_a_saved_run_again(run_dir: Path) -> None:
    result = run_workbench("report", str(run_dir), "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == load(run_dir)
    result = run_workbench("report", str(run_dir))
    assert result.returncode == 0 and "Arrow accounts 524,288 B at 'allocated'" in result.stdout


def test_report_of_a_directory_without_a_run_exits_2(tmp_path: Path) -> None:
    result = run_workbench("report", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"workbench: {tmp_path}: no report.json there (expected a run directory written by `workbench run`)"


def test_diff_of_a_run_with_itself_is_zero_and_a_bigger_vector_fails_the_check(run_dir: Path, tmp_path: Path) -> None:
    result = run_workbench("diff", str(run_dir), str(run_dir), "--fail-over", "0")
    assert result.returncode == 0, result.stdout
    assert "+0.0%" in result.stdout and "+512" not in result.stdout
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text((ROOT / "scenarios" / "arrow-intvector.yaml").read_text()
                      .replace("count: 100000, allocator", "count: 200000, allocator"))
    other = tmp_path / "bigger-run"
    assert run_workbench("run", str(bigger), "--hold", "0", "--out", str(other)).returncode == 0
    assert by_label(load(other))["allocated"]["arrow"]["allocated_bytes"] == 1048576
    result = run_workbench("diff", str(run_dir), str(other), "--fail-over", "50")
    assert result.returncode == 1
    assert "allocated/arrow.allocated_bytes" in result.stderr and "+100.0%" in result.stdout


def test_a_failed_run_keeps_its_directory(tmp_path: Path) -> None:
    scenario = tmp_path / "limit.yaml"
    scenario.write_text(
        "name: limit\ndescription: over the limit\nsample_interval: 20ms\n"
        "steps:\n  - root_allocator: {limit: 100KiB}\n  - snapshot: baseline\n  - hold: 300ms\n"
        "  - allocate: {vector: v, count: 100000}\n"
    )
    out = tmp_path / "run"
    assert run_workbench("run", str(scenario), "--out", str(out)).returncode == 3
    report = load(out)
    assert report["status"] == "failed" and [s["label"] for s in report["snapshots"]] == ["baseline"]
    assert len((out / "samples.jsonl").read_text().splitlines()) >= 5
    assert (out / "nmt" / "baseline.txt").is_file() and (out / "timeline.parquet").is_file()


def test_region_texts_not_asked_again_are_the_same_file_from_the_second_snapshot_on(run_dir: Path) -> None:
    regions = run_dir / "regions"
    note = b"# workbench: not asked again; what the JVM said at '"
    # JDK 17 (no System.map): the start-up log and the code heaps are asked once (in the warm-up) and kept, so every
    # snapshot's file is one file, linked; its bytes are what the JVM said (the code heaps' after the note line).
    for source in ("start-up-log", "codecache"):
        files = [regions / f"{label}.{source}.txt" for label in LABELS]
        assert len({f.stat().st_ino for f in files}) == 1 and files[0].stat().st_nlink == len(LABELS), source
    assert (regions / "baseline.codecache.txt").read_bytes().startswith(note)
    assert b"[gc,metaspace" in (regions / "baseline.start-up-log.txt").read_bytes()
    # The metaspace's nodes are asked again when NMT's class reservation moved: a kept text is the previous file.
    files = [regions / f"{label}.metaspace.txt" for label in LABELS]
    for before, after in zip(files, files[1:]):
        if after.read_bytes().startswith(note) and after.read_bytes() == before.read_bytes():
            assert after.stat().st_ino == before.stat().st_ino, after.name
        if not after.read_bytes().startswith(note):
            assert after.stat().st_nlink == 1, after.name
    # The stack pointers change with the threads: written at each snapshot, never linked.
    stacks = [(regions / f"{label}.stack-pointers.txt").stat() for label in LABELS]
    assert len({s.st_ino for s in stacks}) == len(LABELS) and {s.st_nlink for s in stacks} == {1}
