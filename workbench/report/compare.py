"""Several runs of one scenario, one per allocator: the model of ``workbench.compare/1`` and its terminal table."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.figures import COMPARED
from workbench.report.model import Report, Snapshot, report_to_dict
from workbench.report.repeats import spread_of
from workbench.report.text import spread_range
from workbench.units import format_bytes

SCHEMA = "workbench.compare/1"


@dataclass(frozen=True)
class ComparedRun:
    label: str  # the allocator as given, with its MALLOC_CONF if any: "jemalloc@background_thread:true"
    report: Report


def compare_to_json(scenario: str, runs: list[ComparedRun]) -> str:
    data = {
        "schema": SCHEMA,
        "scenario": scenario,
        "runs": [{"allocator": run.label, "report": report_to_dict(run.report)} for run in runs],
    }
    return json.dumps(data, indent=2) + "\n"


def _snapshot_or_none(report: Report, label: str) -> Snapshot | None:
    try:
        return report.snapshot(label)
    except KeyError:
        return None


def render_compare(runs: list[ComparedRun], console: Console) -> None:
    """One table per snapshot label: metrics as rows, allocators as columns."""
    labels: list[str] = []
    for run in runs:
        labels += [s.label for s in run.report.snapshots if s.label not in labels]
    for label in labels:
        table = Table(title=Text(label, style="bold"), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("", no_wrap=True)
        for run in runs:
            table.add_column(run.label, justify="right", no_wrap=True)
        for figure in COMPARED:
            cells: list[str | Text] = []
            for run in runs:
                place = spread_of(run.report, label, figure.key)
                if place is not None and place.median is not None and place.min is not None \
                        and place.max is not None:
                    cells.append(Text(f"{format_bytes(place.median)}\n{spread_range(place.min, place.max)}"))
                    continue
                snapshot = _snapshot_or_none(run.report, label)
                value = figure.value(snapshot) if snapshot else None
                cells.append(format_bytes(value) if value is not None else Text("-", style="dim"))
            table.add_row(figure.name, *cells)
        times = []
        for run in runs:
            snapshot = _snapshot_or_none(run.report, label)
            index = run.report.snapshots.index(snapshot) if snapshot else -1
            previous = run.report.snapshots[index - 1] if index > 0 else None
            times.append(f"{snapshot.t_ms - previous.t_ms:,.0f} ms" if snapshot and previous else "-")
        table.add_row("time since previous snapshot", *times)
        console.print(table)
    repeated = [run for run in runs if run.report.repeats is not None]
    if repeated:
        counts = sorted({run.report.repeats.count for run in repeated if run.report.repeats})
        console.print(Text(f"Each allocator ran {'/'.join(map(str, counts))} times: median, and min..max below it.",
                           style="dim"))
    for run in runs:
        if run.report.status != "ok" and run.report.error:
            console.print(Text(f"{run.label}: run failed: {run.report.error.type}: {run.report.error.message}",
                               style="bold red"))
