"""Fabricated reports with chosen, exact figures: the renderers tested without a JVM."""

from __future__ import annotations

from collections.abc import Mapping as MappingOf

from workbench.probes.allocator import AllocatorSnapshot, SizeClass
from workbench.probes.arrow import ArrowSnapshot
from workbench.probes.nmt import NmtCategory, NmtSummary
from workbench.probes.process import Mapping, ProcessSnapshot
from workbench.report.build import with_deltas
from workbench.report.model import AllocatorSection, Checks, JvmSection, Report, ScenarioSection, Snapshot

KIB, MIB = 1024, 1024 * 1024

# A jemalloc run of arrow-intvector at baseline, by figure key; `allocated` adds DELTAS to it.
BASELINE: dict[str, int] = {
    "arrow.requested_bytes": 0,
    "arrow.allocated_bytes": 0,
    "arrow.peak_bytes": 0,
    "nmt.total_committed_bytes": 100 * MIB,
    "nmt.malloc_total_bytes": 10 * MIB,
    "nmt.categories.Other.committed_bytes": 10 * KIB,
    "nmt.categories.Java Heap.committed_bytes": 40 * MIB,
    "nmt.categories.Thread.committed_bytes": 1 * MIB,
    "nmt.categories.Class.committed_bytes": 1 * MIB,
    "nmt.categories.Code.committed_bytes": 7 * MIB,
    "nmt.categories.GC.committed_bytes": 38 * MIB,
    "nmt.categories.Internal.committed_bytes": 248 * KIB,
    "allocator.allocated_bytes": 20 * MIB,
    "allocator.active_bytes": 21 * MIB,
    "allocator.metadata_bytes": 3 * MIB,
    "allocator.resident_bytes": 24 * MIB,
    "allocator.mapped_bytes": 24 * MIB,
    "allocator.retained_bytes": 8 * MIB,
    "process.rss_bytes": 160 * MIB,
    "process.anon_rss_bytes": 70 * MIB,
    "process.anon_mappings": 148,
}
# What allocating the 100,000-int vector added (figures of a real jemalloc run).
DELTAS: dict[str, int] = {
    "arrow.requested_bytes": 412_500,
    "arrow.allocated_bytes": 524_288,
    "arrow.peak_bytes": 524_288,
    "nmt.categories.Other.committed_bytes": 4_194_304,
    "nmt.malloc_total_bytes": 4_827_397,
    "nmt.total_committed_bytes": 5_765_381,
    "allocator.allocated_bytes": 6_404_944,
    "allocator.active_bytes": 6_479_872,
    "allocator.resident_bytes": 6_692_864,
    "allocator.mapped_bytes": 6_692_864,
    "process.rss_bytes": 10_596_352,
    "process.anon_rss_bytes": 10_596_352,
    "process.anon_mappings": 4,
}
# jemalloc's live size classes at `closed`, most bytes first: the Netty chunk, one 512 KiB extent, then 14 small
# bins of 100 regions each (16 to 224 bytes); 16 in all, one more than the renderers show.
SIZE_CLASSES: list[SizeClass] = [
    SizeClass("large", 4 * MIB, 1, 4 * MIB),
    SizeClass("large", 512 * KIB, 1, 512 * KIB),
    *(SizeClass("small", 16 * k, 100, 1600 * k) for k in range(14, 0, -1)),
]
# The figures glibc has no number for.
GLIBC_NONE = ("allocator.active_bytes", "allocator.metadata_bytes", "allocator.resident_bytes",
              "allocator.retained_bytes")


def grown(by: MappingOf[str, int], base: MappingOf[str, int] = BASELINE) -> dict[str, int]:
    """``base`` with ``by`` added, figure by figure."""
    return {key: value + by.get(key, 0) for key, value in base.items()}


def snapshot(label: str, t_ms: float, figures: MappingOf[str, int | None], backend: str = "jemalloc",
             largest_anon_mappings: tuple[Mapping, ...] = (), size_classes: list[SizeClass] | None = None) -> Snapshot:
    """A snapshot holding exactly ``figures`` (by key); a layer without any figure is None."""

    def get(key: str) -> int | None:
        return figures.get(key)

    def need(key: str) -> int:
        value = figures.get(key)
        assert value is not None, key
        return value

    arrow = None
    if "arrow.allocated_bytes" in figures:
        arrow = ArrowSnapshot(need("arrow.allocated_bytes"), need("arrow.peak_bytes"), need("arrow.requested_bytes"))
    nmt = None
    if "nmt.total_committed_bytes" in figures:
        prefix = "nmt.categories."
        categories = {
            key.removeprefix(prefix).removesuffix(".committed_bytes"): NmtCategory(value, value, value, 1)
            for key, value in figures.items() if key.startswith(prefix) and value is not None
        }
        nmt = NmtSummary(2 * need("nmt.total_committed_bytes"), need("nmt.total_committed_bytes"),
                         need("nmt.malloc_total_bytes"), 1000, categories)
    allocator = AllocatorSnapshot(
        backend, get("allocator.allocated_bytes"), get("allocator.active_bytes"), get("allocator.metadata_bytes"),
        get("allocator.resident_bytes"), get("allocator.mapped_bytes"), get("allocator.retained_bytes"),
    )
    process = None
    if "process.rss_bytes" in figures:
        process = ProcessSnapshot(need("process.rss_bytes"), need("process.anon_rss_bytes"),
                                  need("process.anon_mappings"), need("process.anon_rss_bytes"),
                                  largest_anon_mappings)
    return Snapshot(label=label, t_ms=t_ms, cost_ms=1.0, arrow=arrow, nmt=nmt, allocator=allocator,
                    process=process, size_classes=size_classes)


def report(snapshots: list[Snapshot], backend: str = "jemalloc", allocation_manager: str = "netty") -> Report:
    """A finished run of these snapshots, with deltas against the first and a ledger each (as `build_report`)."""
    with_ledgers, baseline = with_deltas(snapshots, allocation_manager)
    return Report(
        scenario=ScenarioSection("fabricated", "a report made in a test", "tests/unit/reports.py"),
        allocator=AllocatorSection(name=backend, library=None, version="5.3.0", malloc_conf=None, backend=backend,
                                   detected_library=f"/usr/lib/lib{backend}.so", config_prof=False,
                                   config_stats=True),
        jvm=JvmSection(java_home="/usr/lib/jvm/java-17", version="17.0.15", vm="OpenJDK 64-Bit Server VM",
                       options=[], allocation_manager=allocation_manager, nmt="summary", pyarrow_memory_pool=None),
        snapshots=with_ledgers,
        checks=Checks(),
        status="ok",
        baseline=baseline,
    )


def jemalloc_report() -> Report:
    """baseline, then `allocated` (+ DELTAS), then `closed` (Arrow back to 0, the rest kept)."""
    allocated = grown(DELTAS)
    closed = {**allocated, "arrow.requested_bytes": 0, "arrow.allocated_bytes": 0}
    mapping = Mapping(0x7F0000000000, 0x7F0000400000, "rw-p", "", 4 * MIB, 4 * MIB, 4 * MIB)
    return report([
        snapshot("baseline", 600.0, BASELINE),
        snapshot("allocated", 660.0, allocated),
        snapshot("closed", 1940.0, closed, largest_anon_mappings=(mapping,), size_classes=SIZE_CLASSES),
    ])


def glibc_report() -> Report:
    """The same run under glibc: no active, metadata, resident or retained figure."""
    none = dict.fromkeys(GLIBC_NONE)
    base: dict[str, int | None] = {**BASELINE, **none}
    allocated: dict[str, int | None] = {**grown(DELTAS), **none}
    return report([snapshot("baseline", 600.0, base, "glibc"), snapshot("allocated", 660.0, allocated, "glibc")],
                  backend="glibc")
