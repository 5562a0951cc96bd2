"""What the workbench changes in what it measures (#13): JPype's GC link and NMT, really run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import by_label, run_json, run_workbench

pytestmark = [pytest.mark.jvm, pytest.mark.slow]

ALLOCATORS = ("glibc", "jemalloc", "tcmalloc", "mimalloc")


def _compare(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "compare.json"
    result = run_workbench("compare", *args, "--json", str(out), "--out", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    runs: list[dict[str, Any]] = json.loads(out.read_text())["runs"]
    return runs


def test_the_java_heap_no_longer_depends_on_the_allocator(tmp_path: Path) -> None:
    # With JPype's GC link, glibc's and tcmalloc's mallinfo() drive System.gc() during start-up and the baseline
    # heap is ~40 MiB; under jemalloc and mimalloc (no mallinfo) it is ~388 MiB. Cut, it is the same under all four.
    runs = _compare(tmp_path, "arrow-intvector", "--allocators", ",".join(ALLOCATORS), "--hold", "0")
    heaps = {}
    for run in runs:
        report = run["report"]
        assert report["jvm"]["jpype_gc_link"] is False
        assert report["jvm"]["jpype_gc_triggered"] == 0
        baseline = report["snapshots"][0]
        heaps[run["allocator"]] = baseline["nmt"]["categories"]["Java Heap"]["committed_bytes"]
    assert set(heaps) == set(ALLOCATORS)
    assert max(heaps.values()) <= min(heaps.values()) * 1.01, heaps


def test_the_gc_link_kept_on_request_fires_under_glibc(tmp_path: Path) -> None:
    kept = run_json(tmp_path, "arrow-intvector", "--allocator", "glibc", "--hold", "0", "--jpype-gc-link",
                    "--no-html")
    cut = run_json(tmp_path, "arrow-intvector", "--allocator", "glibc", "--hold", "0", "--no-html")
    assert kept["jvm"]["jpype_gc_link"] is True and cut["jvm"]["jpype_gc_link"] is False
    # Measured here: 3 collections asked for by JPype, the heap shrunk to 40 MiB; none when cut.
    assert kept["jvm"]["jpype_gc_triggered"] >= 1 and cut["jvm"]["jpype_gc_triggered"] == 0
    assert kept["jvm"]["gc_collections"] > cut["jvm"]["gc_collections"]
    heap = "nmt.categories.Java Heap.committed_bytes"

    def baseline_heap(report: dict[str, Any]) -> int:
        value: int = report["snapshots"][0]["nmt"]["categories"]["Java Heap"]["committed_bytes"]
        return value

    assert baseline_heap(kept) < baseline_heap(cut) / 2, heap


def test_the_scenarios_gc_step_still_collects(tmp_path: Path) -> None:
    scenario = tmp_path / "gc.yaml"
    scenario.write_text("name: gc-step\ndescription: one collection\nsample_interval: 0\n"
                        "steps:\n  - snapshot: before\n  - gc\n  - snapshot: after\n")
    without = tmp_path / "none.yaml"
    without.write_text("name: no-gc-step\ndescription: no collection\nsample_interval: 0\n"
                       "steps:\n  - snapshot: before\n  - snapshot: after\n")
    collected = run_json(tmp_path, str(scenario), "--allocator", "jemalloc", "--no-html")
    idle = run_json(tmp_path, str(without), "--allocator", "jemalloc", "--no-html")
    assert collected["jvm"]["gc_collections"] == idle["jvm"]["gc_collections"] + 1
    assert collected["jvm"]["jpype_gc_triggered"] == 0


def test_nmt_off_leaves_the_nmt_layer_null_and_the_rest_measured(tmp_path: Path) -> None:
    runs = _compare(tmp_path, "arrow-intvector", "-a", "jemalloc", "--nmt", "off,summary", "--hold", "0")
    assert [run["allocator"] for run in runs] == ["jemalloc nmt:off", "jemalloc nmt:summary"]
    off, summary = (run["report"] for run in runs)
    assert off["jvm"]["nmt"].startswith("off") and summary["jvm"]["nmt"] == "summary"
    assert "-XX:NativeMemoryTracking=summary" not in off["jvm"]["options"]
    for snapshot in off["snapshots"]:
        assert snapshot["nmt"] is None
        assert snapshot["allocator"]["allocated_bytes"] > 0 and snapshot["process"]["rss_bytes"] > 0
    assert by_label(off)["allocated"]["arrow"]["allocated_bytes"] == 524288
    assert all(s["nmt"] is not None for s in summary["snapshots"])


def test_nmts_header_moves_the_netty_chunk_into_the_next_size_class_and_the_report_says_so(tmp_path: Path) -> None:
    def large_at_allocated(report: dict[str, Any]) -> dict[int, int]:
        return {c["size_bytes"]: c["count"] for c in by_label(report)["allocated"]["size_classes"]
                if c["kind"] == "large" and c["size_bytes"] >= 4 * MIB}

    on = _compare(tmp_path / "on", "arrow-intvector", "-a", "jemalloc", "--hold", "0")[0]["report"]
    off = _compare(tmp_path / "off", "arrow-intvector", "-a", "jemalloc", "--nmt", "off", "--hold", "0")[0]["report"]
    # Measured: the 4 MiB chunk is a 4 MiB extent without NMT, a 5 MiB one with it (+25 %).
    assert large_at_allocated(off) == {4 * MIB: 1}
    assert large_at_allocated(on) == {5 * MIB: 1}
    result = run_workbench("report", on["run_dir"])
    assert "jemalloc's 5.0 MiB class, the one just above 4.0 MiB, holds 1 more extent(s)" in " ".join(result.stdout.split())
    assert "1,048,576 B (25%) more" in " ".join(result.stdout.split())
    assert "just above" not in run_workbench("report", off["run_dir"]).stdout


MIB = 1024 * 1024
