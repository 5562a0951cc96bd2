"""The registry of figures: every key resolves, and the timeline's two ends (worker, Parquet) agree on it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.unit import reports
from workbench.figures import (
    BY_KEY,
    COMPARED,
    DIFFED,
    FIGURES,
    LEDGER,
    SAMPLE_COLUMNS,
    SAMPLED,
    timeline_charts,
)
from workbench.probes.allocator import AllocatorInfo, AllocatorSnapshot
from workbench.probes.nmt import parse_summary
from workbench.probes.process_status import StatusFile, read_status
from workbench.protocol.samples import make_sample
from workbench.report.timeline import schema, write_timeline
from workbench.worker.sampler import Sampler

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_key_resolves_on_a_fabricated_snapshot_to_its_exact_figure() -> None:
    snapshot = reports.jemalloc_report().snapshot("allocated")
    expected = reports.grown(reports.DELTAS)
    assert set(BY_KEY) == set(expected)
    assert {figure.key: figure.value(snapshot) for figure in FIGURES} == expected
    assert BY_KEY["nmt.categories.Java Heap.committed_bytes"].value(snapshot) == 40 * reports.MIB


def test_a_layer_without_figures_reads_as_none_not_zero() -> None:
    glibc = reports.glibc_report().snapshot("baseline")
    assert BY_KEY["allocator.resident_bytes"].value(glibc) is None
    assert BY_KEY["allocator.mapped_bytes"].value(glibc) == 24 * reports.MIB
    other = BY_KEY["nmt.categories.Other.committed_bytes"]
    assert other.value({"nmt": None}) is None
    assert other.value({"nmt": {"categories": {}}}) is None
    assert other.value({"nmt": {"categories": {"Other": {"committed_bytes": 4_194_304}}}}) == 4_194_304


def test_keys_and_columns_are_unique_and_every_place_has_distinct_ranks() -> None:
    assert len(BY_KEY) == len(FIGURES) == 21
    columns = [f.column for f in SAMPLED]
    assert len(set(columns)) == len(columns) == 11
    for ranks in ([f.compared for f in COMPARED], [f.diffed for f in DIFFED],
                  [f.ledger.rank for f in LEDGER if f.ledger]):
        assert ranks == list(range(len(ranks)))
    assert all(f.unit == "bytes" for f in (*SAMPLED, *COMPARED, *DIFFED, *LEDGER))


def test_each_place_lists_the_figures_it_always_had_in_its_order() -> None:
    assert [f.name for f in COMPARED] == [
        "anonymous RSS", "allocator allocated", "allocator resident", "allocator retained", "allocator mapped",
        "NMT committed", "Arrow allocated",
    ]
    assert [f.key for f in DIFFED] == [
        "arrow.allocated_bytes", "nmt.categories.Other.committed_bytes", "nmt.malloc_total_bytes",
        "nmt.total_committed_bytes", "allocator.allocated_bytes", "allocator.resident_bytes",
        "process.anon_rss_bytes", "process.rss_bytes",
    ]
    assert [f.ledger.label for f in LEDGER if f.ledger] == [
        "Arrow: requested by vectors", "Arrow: accounted", "NMT: Other (Unsafe, direct buffers)",
        "NMT: malloc total", "allocator: allocated", "allocator: active", "allocator: resident",
        "allocator: mapped", "process: anonymous RSS",
    ]
    assert [(layer, [[f.column for f in panel] for panel in panels]) for layer, panels in timeline_charts()] == [
        ("process", [["rss_bytes", "anon_rss_bytes"]]),
        ("allocator", [["allocator_allocated_bytes", "allocator_active_bytes", "allocator_resident_bytes",
                        "allocator_mapped_bytes", "allocator_retained_bytes"]]),
        ("Arrow", [["arrow_allocated_bytes"]]),
        ("NMT", [["nmt_committed_bytes"], ["nmt_malloc_bytes", "nmt_other_committed_bytes"]]),
    ]


def test_sample_columns_are_the_parquet_schema_columns() -> None:
    assert schema().names == list(SAMPLE_COLUMNS)
    assert SAMPLE_COLUMNS[:2] == ("t_ms", "step") and SAMPLE_COLUMNS[-1] == "cost_us"
    assert {str(schema().field(f.column).type) for f in SAMPLED if f.column} == {"int64"}


class _Allocator:
    info = AllocatorInfo("jemalloc", None, "5.3.0", False, True)

    def snapshot(self) -> AllocatorSnapshot:
        return AllocatorSnapshot("jemalloc", 6_404_944, 6_479_872, 3 * reports.MIB, 6_692_864, 6_692_865, None)

    def raw_statistics(self) -> tuple[str, str] | None:
        return None


def test_the_worker_samples_exactly_the_registry_columns_and_parquet_keeps_them(tmp_path: Path) -> None:
    nmt = (FIXTURES / "nmt-jdk17-summary-b.txt").read_text()
    sampler = Sampler(tmp_path / "samples.jsonl", 100, 2, 0.0, _Allocator(), arrow_allocated=lambda: 524_288,
                      nmt_text=lambda: nmt, current_step=lambda: 3)
    with_nmt, without_nmt = sampler._sample(0), sampler._sample(1)
    assert tuple(with_nmt) == tuple(without_nmt) == SAMPLE_COLUMNS
    assert with_nmt["step"] == 3 and with_nmt["arrow_allocated_bytes"] == 524_288
    assert (with_nmt["allocator_allocated_bytes"], with_nmt["allocator_mapped_bytes"],
            with_nmt["allocator_retained_bytes"]) == (6_404_944, 6_692_865, None)
    assert (with_nmt["nmt_committed_bytes"], with_nmt["nmt_malloc_bytes"], with_nmt["nmt_other_committed_bytes"]) \
        == (497_902_005, 15_372_725, 534_536)
    assert without_nmt["nmt_committed_bytes"] is None and without_nmt["rss_bytes"] > 0
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in (with_nmt, without_nmt)))
    import pyarrow.parquet as pq

    assert write_timeline(tmp_path / "samples.jsonl", tmp_path / "timeline.parquet") == 2
    table = pq.read_table(tmp_path / "timeline.parquet")
    assert table.column_names == list(SAMPLE_COLUMNS)
    assert table.column("nmt_other_committed_bytes").to_pylist() == [534_536, None]


def test_a_sample_holds_each_figure_as_the_registry_reads_it_from_the_same_layers() -> None:
    nmt = parse_summary((FIXTURES / "nmt-jdk17-summary-b.txt").read_text())
    status = {"rss_bytes": 90 * reports.MIB, "anon_rss_bytes": 40 * reports.MIB}
    allocator = _Allocator().snapshot()
    for arrow, layer_nmt, layer_status in ((524_288, nmt, status), (None, None, None), (0, nmt, {})):
        layers = {"process": layer_status, "arrow": {"allocated_bytes": arrow} if arrow is not None else None,
                  "allocator": allocator, "nmt": layer_nmt}
        sample = make_sample(1.5, 2, layer_status, arrow, allocator, layer_nmt)
        assert sample == {"t_ms": 1.5, "step": 2, **{f.column: f.value(layers) for f in SAMPLED if f.column}}
    assert make_sample(0.0, None, status, 0, allocator, nmt)["arrow_allocated_bytes"] == 0


def test_the_status_reader_reads_the_kernels_two_lines_exactly() -> None:
    def by_lines(text: str) -> dict[str, int]:
        fields = {"VmRSS:": "rss_bytes", "RssAnon:": "anon_rss_bytes"}
        return {fields[line.split()[0]]: int(line.split()[1]) * 1024 for line in text.splitlines()
                if line.split() and line.split()[0] in fields}

    # A process that does not change its memory between the two reads: sleeping, read from here.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        expected = by_lines(Path(f"/proc/{child.pid}/status").read_text())
        assert read_status(child.pid) == expected
        assert set(expected) == {"rss_bytes", "anon_rss_bytes"} and expected["rss_bytes"] > 0
    finally:
        child.kill()
        child.wait()
    assert set(read_status()) == {"rss_bytes", "anon_rss_bytes"}
    # A zombie has no memory: status prints no VmRSS, and the reader gives nothing (not 0).
    zombie = subprocess.Popen(["true"])
    time.sleep(0.3)
    try:
        assert "VmRSS" not in Path(f"/proc/{zombie.pid}/status").read_text() and read_status(zombie.pid) == {}
    finally:
        zombie.wait()


def test_the_samplers_open_statm_reads_each_time_what_the_kernel_counts_now() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.readline(); "
                              "block = bytearray(64 << 20); print(flush=True); time.sleep(30)"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    status = StatusFile(child.pid)
    try:
        time.sleep(0.3)
        before = status.read()
        assert before == read_status(child.pid)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("\n")
        child.stdin.flush()
        child.stdout.readline()  # 64 MiB allocated and zeroed (touched) by now
        after = status.read()
        assert after == read_status(child.pid)
        # The same open file, read again: the 64 MiB block is in it (bytearray writes its zeros: every page).
        assert after["anon_rss_bytes"] - before["anon_rss_bytes"] >= 64 << 20
    finally:
        child.kill()
        child.wait()
        status.close()
