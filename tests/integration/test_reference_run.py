"""The reference scenario, really run: a JVM started by JPype in a worker with the allocator preloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import JDK25, by_label, run_json

pytestmark = [pytest.mark.jvm, pytest.mark.slow]

MIB = 1024 * 1024
LABELS = ["baseline", "allocated", "filled", "held", "vector-closed", "allocator-closed"]
NETTY_CHUNK = 4 * MIB


def test_report_has_the_contracts_sections_and_every_phase(jemalloc_report: dict[str, Any]) -> None:
    report = jemalloc_report
    assert report["schema"] == "workbench.report/1"
    assert report["status"] == "ok" and report["error"] is None
    assert [s["label"] for s in report["snapshots"]] == LABELS
    assert report["scenario"]["name"] == "arrow-intvector"
    assert report["scenario"]["source"].endswith("scenarios/arrow-intvector.yaml")
    times = [s["t_ms"] for s in report["snapshots"]]
    assert times == sorted(times)
    # The hold step really held (300 ms asked on the command line).
    held = by_label(report)
    assert 300 <= held["held"]["t_ms"] - held["filled"]["t_ms"] < 3000


def test_arrow_accounts_a_power_of_two_for_412500_requested_bytes(jemalloc_report: dict[str, Any]) -> None:
    snaps = by_label(jemalloc_report)
    assert snaps["baseline"]["arrow"] == {"allocated_bytes": 0, "peak_bytes": 0, "requested_bytes": 0}
    assert snaps["allocated"]["arrow"] == {"allocated_bytes": 524288, "peak_bytes": 524288, "requested_bytes": 412500}
    assert snaps["allocated"]["deltas"]["arrow.allocated_bytes"] == 524288
    assert snaps["vector-closed"]["arrow"]["allocated_bytes"] == 0
    assert snaps["allocator-closed"]["arrow"] == {"allocated_bytes": 0, "peak_bytes": 524288, "requested_bytes": 0}


def test_pyarrow_reads_the_vector_zero_copy_and_sums_it(jemalloc_report: dict[str, Any]) -> None:
    checks = jemalloc_report["checks"]
    assert checks["zero_copy"] is True
    assert checks["pyarrow_address"] == checks["java_address"] and checks["java_address"] > 0
    assert checks["sum"] == 9_999_900_000 == checks["java_sum"]


def test_netty_chunk_shows_in_nmt_other_and_stays_after_both_closes(jemalloc_report: dict[str, Any]) -> None:
    snaps = by_label(jemalloc_report)
    for label in ["allocated", "filled", "held", "vector-closed", "allocator-closed"]:
        grown = snaps[label]["deltas"]["nmt.categories.Other.committed_bytes"]
        # One whole pooled chunk, far more than Arrow's 512 KiB; a few KiB of other Unsafe use may come with it.
        assert NETTY_CHUNK <= grown < NETTY_CHUNK + 256 * 1024, label
    other = snaps["allocated"]["nmt"]["categories"]["Other"]
    assert other["malloc_bytes"] == other["committed_bytes"] and other["malloc_count"] >= 1


def test_jemalloc_statistics_are_read_from_the_preloaded_library(jemalloc_report: dict[str, Any]) -> None:
    allocator = jemalloc_report["allocator"]
    assert allocator["name"] == "jemalloc" and allocator["backend"] == "jemalloc"
    assert allocator["library"].endswith("libjemalloc.so.2")
    assert Path(allocator["detected_library"]).resolve() == Path(allocator["library"]).resolve()
    assert allocator["version"].startswith("5.") and allocator["config_stats"] is True
    snaps = by_label(jemalloc_report)
    for snap in jemalloc_report["snapshots"]:
        stats = snap["allocator"]
        assert all(stats[f"{k}_bytes"] is not None for k in ("allocated", "active", "metadata", "resident", "mapped"))
        assert stats["allocated_bytes"] <= stats["active_bytes"] <= stats["resident_bytes"] <= stats["mapped_bytes"]
    # The Netty chunk is malloc'd by the JVM (Unsafe.allocateMemory), so jemalloc sees it too.
    assert NETTY_CHUNK <= snaps["allocated"]["deltas"]["allocator.allocated_bytes"] < 64 * MIB


def test_kernel_view_counts_the_touched_pages(jemalloc_report: dict[str, Any]) -> None:
    snaps = by_label(jemalloc_report)
    baseline = snaps["baseline"]["process"]
    assert 0 < baseline["anon_rss_bytes"] < baseline["rss_bytes"]
    assert baseline["anon_mappings"] > 10
    assert baseline["largest_anon_mappings"][0]["rss_bytes"] >= baseline["largest_anon_mappings"][-1]["rss_bytes"]
    # Filling 400,000 bytes of ints makes at least those pages resident.
    assert snaps["filled"]["deltas"]["process.anon_rss_bytes"] >= 400_000
    assert snaps["filled"]["process"]["rss_bytes"] < 2048 * MIB


def test_jvm_section_lists_every_option_and_nmt_state(jemalloc_report: dict[str, Any]) -> None:
    jvm = jemalloc_report["jvm"]
    assert jvm["version"].startswith("17.")
    assert jvm["nmt"] == "summary"
    assert jvm["pyarrow_memory_pool"] == "system"
    assert jvm["allocation_manager"] == "netty"
    assert "-XX:NativeMemoryTracking=summary" in jvm["options"]
    assert "--add-opens=java.base/java.nio=ALL-UNNAMED" in jvm["options"]
    # HotSpot's diagnostic command opened to the kernels: NMT without the platform MBean server.
    assert {"--add-opens=java.management/sun.management=ALL-UNNAMED",
            "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED"} <= set(jvm["options"])
    assert "-Darrow.allocation.manager.type=Netty" in jvm["options"]


def test_under_glibc_nothing_is_preloaded_and_missing_figures_are_null(glibc_report: dict[str, Any]) -> None:
    allocator = glibc_report["allocator"]
    assert allocator["library"] is None and allocator["backend"] == "glibc"
    assert "libc.so" in allocator["detected_library"]
    snaps = by_label(glibc_report)
    stats = snaps["allocated"]["allocator"]
    assert stats["active_bytes"] is None and stats["resident_bytes"] is None and stats["retained_bytes"] is None
    # glibc serves the 4 MiB chunk with mmap; mallinfo2 counts it.
    assert NETTY_CHUNK <= snaps["allocated"]["deltas"]["allocator.allocated_bytes"] < 64 * MIB
    assert snaps["allocated"]["arrow"]["allocated_bytes"] == 524288
    assert glibc_report["checks"]["sum"] == 9_999_900_000


def test_unsafe_allocation_manager_costs_only_what_arrow_accounts(tmp_path: Path) -> None:
    source = Path("scenarios/arrow-intvector.yaml").read_text()
    scenario = tmp_path / "unsafe.yaml"
    scenario.write_text(source.replace("allocation_manager: netty", "allocation_manager: unsafe"))
    report = run_json(tmp_path, str(scenario), "--hold", "0")
    snaps = by_label(report)
    assert "-Darrow.allocation.manager.type=Unsafe" in report["jvm"]["options"]
    grown = snaps["allocated"]["deltas"]["nmt.categories.Other.committed_bytes"]
    assert 524288 <= grown < 524288 + 64 * 1024
    # Without a pool, closing gives the memory back.
    assert snaps["allocator-closed"]["deltas"]["nmt.categories.Other.committed_bytes"] < 64 * 1024


@pytest.mark.skipif(not JDK25.is_dir(), reason="the Temurin JDK 25 is not installed here")
def test_jdk25_gets_its_netty_options_and_nmt_is_parsed(tmp_path: Path) -> None:
    report = run_json(tmp_path, "arrow-intvector", "--java-home", str(JDK25), "--hold", "0")
    assert report["jvm"]["version"].startswith("25")
    assert "--sun-misc-unsafe-memory-access=allow" in report["jvm"]["options"]
    assert "-Dio.netty.tryReflectionSetAccessible=true" in report["jvm"]["options"]
    snaps = by_label(report)
    assert snaps["allocated"]["arrow"]["allocated_bytes"] == 524288
    assert snaps["allocated"]["deltas"]["nmt.categories.Other.committed_bytes"] >= NETTY_CHUNK
    assert report["checks"]["zero_copy"] is True and report["checks"]["sum"] == 9_999_900_000


def test_the_worker_runs_without_numpy(jemalloc_report: dict[str, Any]) -> None:
    # The baseline's raw maps: every file the worker has mapped. JPype and pyarrow would import numpy (and map its
    # OpenBLAS) if the worker let them; their own libraries are there, numpy's are not.
    raw = (Path(jemalloc_report["run_dir"]) / "smaps" / "baseline.txt").read_text()
    files = {line.split()[-1] for line in raw.splitlines() if line[:1].isalnum() and "/" in line.split()[-1]}
    assert any(path.endswith(".so") and "/_jpype" in path for path in files), sorted(files)
    assert any("/pyarrow/" in path for path in files)
    assert not [path for path in files if "numpy" in path]
