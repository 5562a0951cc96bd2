"""One scenario run N times, each in a fresh worker: the spread of every figure, and which run stands for them.

A single run is not a measurement one can compare: two runs of arrow-intvector under one allocator differ by 38 %
in NMT malloc (the JIT's arenas). With ``--repeat N`` the report keeps every run's figures; the run shown in full is
the median one (by anonymous RSS at its last snapshot), and each figure gets its median (a measured value: the lower
middle one) and its min-max.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from workbench.figures import COMPARED, DIFFED, Figure
from workbench.report.model import FigureSpread, RepeatSection, Report

# The figures a spread is kept for: what `compare` shows and `diff` checks.
SPREAD_FIGURES: tuple[Figure, ...] = tuple(dict.fromkeys((*DIFFED, *COMPARED)))
_ORDER_BY = "process.anon_rss_bytes"


def spread(label: str, figure: str, values: list[int | None]) -> FigureSpread:
    measured = [v for v in values if v is not None]
    return FigureSpread(
        label=label, figure=figure, values=values,
        median=statistics.median_low(measured) if measured else None,
        min=min(measured) if measured else None,
        max=max(measured) if measured else None,
    )


def _labels(reports: list[Report]) -> list[str]:
    labels: list[str] = []
    for report in reports:
        labels += [s.label for s in report.snapshots if s.label not in labels]
    return labels


def _value(report: Report, label: str, figure: Figure) -> int | None:
    try:
        return figure.value(report.snapshot(label))
    except KeyError:
        return None


def median_run(reports: list[Report]) -> int:
    """The index of the run that stands for all: the median by anonymous RSS at the last snapshot (failed runs
    and runs without the figure only when nothing else is left)."""
    key = next(f for f in SPREAD_FIGURES if f.key == _ORDER_BY)
    ranked = []
    for index, report in enumerate(reports):
        value = key.value(report.snapshots[-1]) if report.snapshots else None
        if report.status == "ok" and value is not None:
            ranked.append((value, index))
    if not ranked:
        return 0
    ranked.sort()
    return ranked[(len(ranked) - 1) // 2][1]


def with_repeats(reports: list[Report], run_dirs: list[str]) -> Report:
    """The median run's report, carrying every run's figures (``repeats``); failed if any run failed."""
    assert reports and len(reports) == len(run_dirs)
    chosen = median_run(reports)
    section = RepeatSection(
        count=len(reports),
        runs=run_dirs,
        statuses=[r.status for r in reports],
        shown=chosen,
        figures=[spread(label, figure.key, [_value(r, label, figure) for r in reports])
                 for label in _labels(reports) for figure in SPREAD_FIGURES],
    )
    report = reports[chosen]
    failed = next((r for r in reports if r.status != "ok"), None)
    if failed is not None and report.status == "ok":
        report = dataclasses.replace(report, status="failed", error=failed.error)
    return dataclasses.replace(report, repeats=section)


def spread_of(report: Report, label: str, figure: str) -> FigureSpread | None:
    """The spread of one figure at one snapshot, when the report is of repeated runs."""
    if report.repeats is None:
        return None
    return next((s for s in report.repeats.figures if s.label == label and s.figure == figure), None)
