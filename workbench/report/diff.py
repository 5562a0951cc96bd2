"""Two runs, snapshot by snapshot and layer by layer: what grew, by how much, and whether it grew too much."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.figures import BY_KEY, DIFFED
from workbench.report.model import Report
from workbench.units import format_bytes

@dataclass(frozen=True)
class LayerDiff:
    label: str
    layer: str  # the figure's key
    a_bytes: int
    b_bytes: int

    @property
    def delta_bytes(self) -> int:
        return self.b_bytes - self.a_bytes

    @property
    def relative(self) -> float | None:
        """(B - A) / A; None when A is 0 (a growth from nothing has no percentage)."""
        return self.delta_bytes / self.a_bytes if self.a_bytes else None


def diff_reports(a: Report, b: Report) -> list[LayerDiff]:
    """Every layer of every snapshot label the two runs share, in A's order."""
    b_labels = {s.label: s for s in b.snapshots}
    diffs = []
    for snapshot in a.snapshots:
        other = b_labels.get(snapshot.label)
        if other is None:
            continue
        for figure in DIFFED:
            a_bytes, b_bytes = figure.value(snapshot), figure.value(other)
            if a_bytes is not None and b_bytes is not None:
                diffs.append(LayerDiff(snapshot.label, figure.key, a_bytes, b_bytes))
    return diffs


def regressions(diffs: list[LayerDiff], fail_over_pct: float) -> list[LayerDiff]:
    """Layers that grew by more than ``fail_over_pct`` percent (a growth from 0 counts when it is not 0)."""
    limit = fail_over_pct / 100
    return [d for d in diffs if d.delta_bytes > 0 and (d.relative is None or d.relative > limit)]


def render_diff(a_name: str, b_name: str, diffs: list[LayerDiff], console: Console,
                flagged: list[LayerDiff] | None = None) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold")
    for column, justify in [("snapshot", "left"), ("layer", "left"), ("A", "right"), ("B", "right"),
                            ("B - A", "right"), ("%", "right")]:
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    previous = None
    for d in diffs:
        if previous is not None and d.label != previous:
            table.add_section()
        pct = "-" if d.relative is None else f"{d.relative * 100:+.1f}%"
        style = "bold red" if flagged and d in flagged else ("yellow" if d.delta_bytes > 0 else "")
        table.add_row(d.label if d.label != previous else "", BY_KEY[d.layer].name, format_bytes(d.a_bytes),
                      format_bytes(d.b_bytes), Text(format_bytes(d.delta_bytes, signed=True), style=style),
                      Text(pct, style=style))
        previous = d.label
    console.print(f"A: {a_name}\nB: {b_name}")
    console.print(table)
