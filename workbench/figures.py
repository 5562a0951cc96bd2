"""The figures that matter, defined once: every table, chart, ledger, comparison and the timeline read this registry.

A leaf module (stdlib only), so the worker, the run code and the report renderers can all import it. A figure's
``key`` is its dotted path into a snapshot (``nmt.categories.Other.committed_bytes``); ``Figure.value`` reads it
from a report ``Snapshot`` or from plain mappings of the same shape (what the sampler has at hand).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Unit = Literal["bytes", "count"]


@dataclass(frozen=True)
class ChartPanel:
    """Where a sampled figure is drawn in the timeline: one chart per layer, a panel per scale."""

    chart: int  # the chart's place on the page, top first; the chart is titled with the layer
    panel: int  # the panel inside that chart, top first


@dataclass(frozen=True)
class LedgerPlace:
    """Where a figure stands in the reconciliation, from Arrow down to the kernel."""

    rank: int  # top first
    label: str  # its line in the ledger: "Arrow: accounted"
    # One of the allocator's figures nearest the kernel: the ledger keeps only the first of these a backend has.
    alternative: bool = False


@dataclass(frozen=True)
class Figure:
    key: str  # dotted path into a snapshot
    layer: str  # "Arrow", "NMT", "allocator" or "process"
    label: str  # its row in the layers table, under its layer; also its legend in the timeline
    name: str  # standing alone, where no layer column is beside it (compare, diff)
    unit: Unit = "bytes"
    column: str | None = None  # its column in samples.jsonl and timeline.parquet; None: not sampled
    chart: ChartPanel | None = None  # None: not drawn
    compared: int | None = None  # its row in `workbench compare`, top first; None: not compared
    diffed: int | None = None  # its row in `workbench diff` (and what --fail-over checks); None: not diffed
    ledger: LedgerPlace | None = None  # None: not in the reconciliation

    def value(self, source: object) -> int | None:
        """The figure in ``source`` (a snapshot, or mappings of the same shape); None where a layer has none."""
        current: object = source
        for part in self.key.split("."):
            if current is None:
                return None
            current = current.get(part) if isinstance(current, Mapping) else getattr(current, part, None)
        return current if isinstance(current, int) and not isinstance(current, bool) else None


NMT_CATEGORIES = ("Other", "Java Heap", "Thread", "Class", "Code", "GC", "Internal")


def _nmt_category(name: str) -> Figure:
    if name != "Other":
        return Figure(f"nmt.categories.{name}.committed_bytes", "NMT", f"{name} committed", f"NMT {name} committed")
    return Figure(
        "nmt.categories.Other.committed_bytes", "NMT", "Other committed", "NMT Other committed",
        column="nmt_other_committed_bytes", chart=ChartPanel(3, 1), diffed=1,
        ledger=LedgerPlace(2, "NMT: Other (Unsafe, direct buffers)"),
    )


# In the order of the layers table: Arrow, NMT, the allocator, the process.
FIGURES: tuple[Figure, ...] = (
    Figure("arrow.requested_bytes", "Arrow", "requested by vectors", "Arrow requested",
           ledger=LedgerPlace(0, "Arrow: requested by vectors")),
    Figure("arrow.allocated_bytes", "Arrow", "allocated (accounted)", "Arrow allocated",
           column="arrow_allocated_bytes", chart=ChartPanel(2, 0), compared=6, diffed=0,
           ledger=LedgerPlace(1, "Arrow: accounted")),
    Figure("arrow.peak_bytes", "Arrow", "peak", "Arrow peak"),
    Figure("nmt.total_committed_bytes", "NMT", "committed, total", "NMT committed",
           column="nmt_committed_bytes", chart=ChartPanel(3, 0), compared=5, diffed=3),
    Figure("nmt.malloc_total_bytes", "NMT", "malloc, total", "NMT malloc total",
           column="nmt_malloc_bytes", chart=ChartPanel(3, 1), diffed=2, ledger=LedgerPlace(3, "NMT: malloc total")),
    *(_nmt_category(name) for name in NMT_CATEGORIES),
    Figure("allocator.allocated_bytes", "allocator", "allocated", "allocator allocated",
           column="allocator_allocated_bytes", chart=ChartPanel(1, 0), compared=1, diffed=4,
           ledger=LedgerPlace(4, "allocator: allocated")),
    Figure("allocator.active_bytes", "allocator", "active", "allocator active",
           column="allocator_active_bytes", chart=ChartPanel(1, 0), ledger=LedgerPlace(5, "allocator: active")),
    Figure("allocator.metadata_bytes", "allocator", "metadata", "allocator metadata"),
    Figure("allocator.resident_bytes", "allocator", "resident", "allocator resident",
           column="allocator_resident_bytes", chart=ChartPanel(1, 0), compared=2, diffed=5,
           ledger=LedgerPlace(6, "allocator: resident", alternative=True)),
    Figure("allocator.mapped_bytes", "allocator", "mapped", "allocator mapped",
           column="allocator_mapped_bytes", chart=ChartPanel(1, 0), compared=4,
           ledger=LedgerPlace(7, "allocator: mapped", alternative=True)),
    Figure("allocator.retained_bytes", "allocator", "retained", "allocator retained",
           column="allocator_retained_bytes", chart=ChartPanel(1, 0), compared=3),
    Figure("process.rss_bytes", "process", "RSS", "RSS",
           column="rss_bytes", chart=ChartPanel(0, 0), diffed=7),
    Figure("process.anon_rss_bytes", "process", "anonymous RSS", "anonymous RSS",
           column="anon_rss_bytes", chart=ChartPanel(0, 0), compared=0, diffed=6,
           ledger=LedgerPlace(8, "process: anonymous RSS")),
    Figure("process.anon_mappings", "process", "anon mappings (count)", "anonymous mappings", unit="count"),
)

BY_KEY: dict[str, Figure] = {figure.key: figure for figure in FIGURES}


SAMPLED: tuple[Figure, ...] = tuple(f for f in FIGURES if f.column is not None)
# One sample, flat: when it was taken, during which step, every sampled figure, and what taking it cost.
SAMPLE_COLUMNS: tuple[str, ...] = ("t_ms", "step", *(f.column for f in SAMPLED if f.column), "cost_us")
COMPARED: tuple[Figure, ...] = tuple(sorted((f for f in FIGURES if f.compared is not None),
                                            key=lambda f: f.compared or 0))
DIFFED: tuple[Figure, ...] = tuple(sorted((f for f in FIGURES if f.diffed is not None), key=lambda f: f.diffed or 0))
LEDGER: tuple[Figure, ...] = tuple(sorted((f for f in FIGURES if f.ledger is not None),
                                          key=lambda f: f.ledger.rank if f.ledger else 0))


def timeline_charts() -> list[tuple[str, list[list[Figure]]]]:
    """The timeline's charts, top first: (layer, panels of figures), each in registry order."""
    drawn: dict[int, dict[int, list[Figure]]] = {}
    for figure in FIGURES:
        if figure.chart is not None:
            drawn.setdefault(figure.chart.chart, {}).setdefault(figure.chart.panel, []).append(figure)
    return [
        (panels[min(panels)][0].layer, [panels[index] for index in sorted(panels)])
        for _, panels in sorted(drawn.items())
    ]
