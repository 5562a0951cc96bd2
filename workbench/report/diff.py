"""Two runs, snapshot by snapshot and layer by layer: what grew, by how much, and whether it grew too much."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.figures import BY_KEY, DIFFED
from workbench.report.model import Report
from workbench.report.repeats import spread_of
from workbench.units import format_bytes

@dataclass(frozen=True)
class LayerDiff:
    label: str
    layer: str  # the figure's key
    a_bytes: int  # the run's figure, or the median of repeated runs
    b_bytes: int
    a_range: tuple[int, int] | None = None  # min and max over repeated runs (None: one run)
    b_range: tuple[int, int] | None = None

    @property
    def within_noise(self) -> bool:
        """Repeated runs on either side, and the two sides' min..max overlap (a single run is its own range): the
        runs cannot tell A from B. Runs of the same program differ bimodally (a JIT compilation running or not at
        a snapshot moves NMT malloc by ~11 MiB), so an overlap, not a median inside the other range, is the test."""
        if self.a_range is None and self.b_range is None:
            return False
        a = self.a_range or (self.a_bytes, self.a_bytes)
        b = self.b_range or (self.b_bytes, self.b_bytes)
        return a[0] <= b[1] and b[0] <= a[1]

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
            a_bytes, a_range = _measured(a, snapshot.label, figure.key, figure.value(snapshot))
            b_bytes, b_range = _measured(b, snapshot.label, figure.key, figure.value(other))
            if a_bytes is not None and b_bytes is not None:
                diffs.append(LayerDiff(snapshot.label, figure.key, a_bytes, b_bytes, a_range, b_range))
    return diffs


def _measured(report: Report, label: str, key: str, value: int | None) -> tuple[int | None, tuple[int, int] | None]:
    """A figure as diff compares it: the median and range of repeated runs, else the one run's value."""
    place = spread_of(report, label, key)
    if place is None or place.median is None or place.min is None or place.max is None:
        return value, None
    return place.median, (place.min, place.max)


def regressions(diffs: list[LayerDiff], fail_over_pct: float) -> list[LayerDiff]:
    """Layers that grew by more than ``fail_over_pct`` percent (a growth from 0 counts when it is not 0), unless the
    growth is within the noise of repeated runs."""
    limit = fail_over_pct / 100
    return [d for d in diffs if d.delta_bytes > 0 and (d.relative is None or d.relative > limit)
            and not d.within_noise]


def render_diff(a_name: str, b_name: str, diffs: list[LayerDiff], console: Console,
                flagged: list[LayerDiff] | None = None) -> None:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold")
    repeated = any(d.a_range is not None or d.b_range is not None for d in diffs)
    columns = [("snapshot", "left"), ("layer", "left"), ("A", "right"), ("B", "right"), ("B - A", "right"),
               ("%", "right")] + ([("noise", "left")] if repeated else [])
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    previous = None
    for d in diffs:
        if previous is not None and d.label != previous:
            table.add_section()
        pct = "-" if d.relative is None else f"{d.relative * 100:+.1f}%"
        style = "bold red" if flagged and d in flagged else ("yellow" if d.delta_bytes > 0 else "")
        table.add_row(d.label if d.label != previous else "", BY_KEY[d.layer].name, format_bytes(d.a_bytes),
                      format_bytes(d.b_bytes), Text(format_bytes(d.delta_bytes, signed=True), style=style),
                      Text(pct, style=style), *([_noise(d)] if repeated else []))
        previous = d.label
    console.print(f"A: {a_name}\nB: {b_name}")
    if repeated:
        console.print(Text("A and B are medians of repeated runs where a run was repeated; a change where the two "
                           "sides' min..max overlap is within noise and never fails --fail-over.", style="dim"))
    console.print(table)


def _noise(d: LayerDiff) -> Text:
    if d.delta_bytes == 0:
        return Text("")
    if d.within_noise:
        return Text("within noise", style="dim")
    return Text("outside both ranges" if d.a_range and d.b_range else "outside the range")
