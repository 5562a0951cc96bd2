"""The HTML report: one self-contained page (inline CSS and SVG charts, no scripts, nothing fetched)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict

import jinja2
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)

from workbench.figures import timeline_charts  # noqa: E402
from workbench.report.ledger import (  # noqa: E402
    OWNER_LABELS,
    Reconciliation,
    describe_basis,
    explain_line,
    explain_owner,
    explain_rounding,
    explain_unexplained,
    line_label,
    named_parts,
)
from workbench.report.model import TOP_SIZE_CLASSES, Report, Snapshot  # noqa: E402
from workbench.report.flamegraph import call_sites_context  # noqa: E402
from workbench.report.text import findings, size_classes_note, table_rows  # noqa: E402
from workbench.report.timeline import read_samples  # noqa: E402
from workbench.units import format_bytes  # noqa: E402

# Text in the SVG stays <text> (escaped by matplotlib), so labels are searchable and selectable in the page.
plt.rcParams["svg.fonttype"] = "none"

_UNITS = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024), ("B", 1))


class Cell(TypedDict):
    text: str
    title: str  # exact figure, shown on hover
    kind: str  # CSS class: "" | "up" | "down" | "none"


class LedgerRow(TypedDict):
    layer: str
    bytes: Cell
    delta_to_next: Cell
    explanation: str


class OwnerRow(TypedDict):
    owner: str
    resident: Cell
    change: Cell
    explanation: str


class LedgerView(TypedDict):
    label: str
    basis: str
    rows: list[LedgerRow]
    owners: list[OwnerRow]  # empty: not attributed by address
    rounding: str
    jvm_mapped: Cell
    unexplained: Cell
    explanation: str


class LayerRow(TypedDict):
    layer: str
    what: str
    first_of_layer: bool
    cells: list[tuple[Cell, Cell | None]]  # value, delta to baseline


class Chart(TypedDict):
    title: str
    svg: str


class MappingRow(TypedDict):
    range: str
    perms: str
    name: str
    size: Cell
    rss: Cell


class SizeClassRow(TypedDict):
    kind: str
    size: Cell
    count: str
    bytes: Cell


def _bytes_cell(value: int | None, signed: bool = False) -> Cell:
    if value is None:
        return Cell(text="-", title="no figure", kind="none")
    kind = "" if not signed or value == 0 else ("up" if value > 0 else "down")
    return Cell(text=format_bytes(value, signed=signed), title=f"{value:+,} B" if signed else f"{value:,} B",
                kind=kind)


def _owner_rows(reconciliation: Reconciliation, backend: str | None) -> list[OwnerRow]:
    if reconciliation.owners is None:
        return []
    rows = [OwnerRow(owner=OWNER_LABELS[line.owner], resident=_bytes_cell(line.resident_bytes),
                     change=_bytes_cell(line.delta_bytes, signed=True), explanation=explain_owner(line, reconciliation))
            for line in reconciliation.owners]
    return rows + [OwnerRow(owner=label, resident=_bytes_cell(None), change=_bytes_cell(value, signed=True),
                            explanation=why) for label, value, why in named_parts(reconciliation, backend)]


def _ledger(snapshot: Snapshot, reconciliation: Reconciliation, backend: str | None = None) -> LedgerView:
    return LedgerView(
        owners=_owner_rows(reconciliation, backend),
        rounding=explain_rounding(reconciliation.rounding) if reconciliation.rounding is not None else "",
        label=snapshot.label,
        basis=describe_basis(reconciliation),
        rows=[
            LedgerRow(layer=line_label(line), bytes=_bytes_cell(line.bytes, signed=True),
                      delta_to_next=_bytes_cell(line.delta_to_next, signed=True),
                      explanation=explain_line(line, reconciliation))
            for line in reconciliation.lines
        ],
        jvm_mapped=_bytes_cell(reconciliation.jvm_mapped_bytes, signed=True),
        unexplained=_bytes_cell(reconciliation.unexplained_bytes, signed=True),
        explanation=explain_unexplained(reconciliation),
    )


def _layer_rows(report: Report) -> list[LayerRow]:
    rows: list[LayerRow] = []
    previous_layer = None
    for layer, figure in table_rows(report):
        cells: list[tuple[Cell, Cell | None]] = []
        for snapshot in report.snapshots:
            value = figure.value(snapshot)
            delta = None
            if figure.unit == "count":
                value_cell = Cell(text="-" if value is None else f"{value:,}", title="", kind="")
            else:
                value_cell = _bytes_cell(value)
                delta = snapshot.deltas.get(figure.key)
            cells.append((value_cell, _bytes_cell(delta, signed=True) if delta else None))
        rows.append(LayerRow(layer=layer, what=figure.label, first_of_layer=layer != previous_layer, cells=cells))
        previous_layer = layer
    return rows


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    # Inline SVG in HTML takes neither the XML prolog nor the DOCTYPE: start at the <svg> element.
    return text[text.index("<svg"):]


def _unit(largest: int) -> tuple[str, int]:
    """The binary unit an axis reads best in, so that its ticks are round numbers of it."""
    return next((name, size) for name, size in _UNITS if largest >= 2 * size or size == 1)


def _points(samples: Sequence[dict[str, Any]], column: str | None) -> list[tuple[float, int]]:
    """(seconds, value) of every sample that has a figure in ``column``."""
    if column is None:
        return []
    return [(float(s["t_ms"]) / 1000, int(s[column])) for s in samples if s.get(column) is not None]


def _charts(report: Report, samples: Sequence[dict[str, Any]]) -> tuple[list[Chart], list[str]]:
    """One chart per layer group with data, and a note for each group without."""
    charts: list[Chart] = []
    notes: list[str] = []
    for title, panels in timeline_charts():
        # NMT is sampled every few samples only: the other rows carry None, which is no point, not zero.
        series = [{figure.label: _points(samples, figure.column) for figure in panel} for panel in panels]
        series = [panel for panel in series if any(panel.values())]
        if not series:
            notes.append(f"{title}: no sample has a figure for this layer.")
            continue
        figure, axes_list = plt.subplots(len(series), 1, sharex=True, squeeze=False,
                                         figsize=(10.5, 0.6 + 2.4 * len(series)))
        for index, (axes, points) in enumerate(zip(axes_list[:, 0], series)):
            values = [y for xy in points.values() for _, y in xy]
            unit_name, unit = _unit(max(abs(y) for y in values))
            for legend, xy in points.items():
                if xy:
                    xs, ys = zip(*xy)
                    sparse = len(xy) < len(samples) / 2
                    axes.plot(xs, [y / unit for y in ys], marker="o" if sparse else None, markersize=3.5,
                              linewidth=1.5, label=legend)
            for snapshot in report.snapshots:
                axes.axvline(snapshot.t_ms / 1000, color="0.6", linestyle="--", linewidth=0.8, zorder=0)
            axes.set_ylabel(unit_name)
            if min(values) < max(values) / 2:
                # From zero unless that flattens the line into its top (NMT committed: mostly the heap).
                axes.set_ylim(bottom=min(0.0, axes.get_ylim()[0]))
            axes.grid(True, alpha=0.3)
            axes.spines[["top", "right"]].set_visible(False)
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
            if index == 0:
                # Above the plot, so that labels cross neither each other's lines nor the data.
                for snapshot in report.snapshots:
                    # parse_math=False: a '$' in a label is text, not mathtext.
                    axes.text(snapshot.t_ms / 1000, 1.02, snapshot.label, transform=axes.get_xaxis_transform(),
                              rotation=60, va="bottom", ha="left", rotation_mode="anchor", fontsize=8,
                              color="0.25", parse_math=False)
        axes_list[-1, 0].set_xlabel("seconds since worker start")
        charts.append(Chart(title=title, svg=_svg(figure)))
    return charts, notes


def _mappings(snapshot: Snapshot) -> list[MappingRow]:
    if snapshot.process is None:
        return []
    return [
        MappingRow(range=f"{m.start:#x}-{m.end:#x}", perms=m.perms, name=m.name or "[anon]",
                   size=_bytes_cell(m.size_bytes), rss=_bytes_cell(m.rss_bytes))
        for m in snapshot.process.largest_anon_mappings
    ]


def _size_classes(report: Report) -> tuple[list[SizeClassRow], str | None]:
    """The table rows for the last snapshot's largest size classes, or why there is no table."""
    note = size_classes_note(report)
    classes = report.snapshots[-1].size_classes if report.snapshots else None
    if note is not None or not classes:
        return [], note
    return [
        SizeClassRow(kind=c.kind, size=_bytes_cell(c.size_bytes), count=f"{c.count:,}", bytes=_bytes_cell(c.bytes))
        for c in classes[:TOP_SIZE_CLASSES]
    ], None


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("workbench.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report, run_dir: Path | None) -> str:
    """The report as one self-contained HTML page; ``run_dir`` supplies the timeline (samples.jsonl)."""
    samples: list[dict[str, Any]] = []
    samples_note = None
    if run_dir is None:
        samples_note = "No run directory: the timeline is not available."
    elif not (run_dir / "samples.jsonl").exists():
        samples_note = "The run directory has no samples.jsonl: the timeline is not available."
    else:
        samples = read_samples(run_dir / "samples.jsonl")
        if not samples:
            samples_note = "samples.jsonl has no samples."
    charts, chart_notes = _charts(report, samples) if samples else ([], [])
    size_classes, size_classes_note = _size_classes(report)
    provenance = {k: v for k, v in asdict(report.allocator.provenance).items() if v not in (None, [], "")}
    ledgers = [_ledger(s, s.reconciliation, report.allocator.backend) for s in report.snapshots if s.reconciliation is not None]
    last = report.snapshots[-1] if report.snapshots else None
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        provenance=provenance,
        findings=findings(report),
        ledgers=ledgers,
        layer_rows=_layer_rows(report),
        charts=charts,
        chart_notes=chart_notes,
        samples_note=samples_note,
        sample_count=len(samples),
        last_label=last.label if last else None,
        mappings=_mappings(last) if last else [],
        size_classes=size_classes,
        size_classes_note=size_classes_note,
        step_results=[json.dumps(result, sort_keys=True) for result in report.step_results],
        call_sites=call_sites_context(report, run_dir),
    )
