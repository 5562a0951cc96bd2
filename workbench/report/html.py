"""The HTML report: one self-contained page (inline CSS, the timeline drawn in the browser by the vendored uPlot from
JSON inlined into the page; nothing fetched, and a Content-Security-Policy that allows only these scripts)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict

import jinja2

from workbench.figures import timeline_charts
from workbench.report.ledger import (
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
from workbench.report.flamegraph import call_sites_context, flame_script
from workbench.report.model import TOP_SIZE_CLASSES, Report, Snapshot
from workbench.report.text import findings, size_classes_note, table_rows
from workbench.report.timeline import read_samples
from workbench.units import format_bytes

UPLOT_VERSION = "1.6.32"  # workbench/report/vendor/uplot/README.md: where it came from, its checksums

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


class ChartSeries(TypedDict):
    label: str
    values: list[float | None]  # in the panel's unit, one per entry of the panel's seconds; None: not sampled then
    points: bool  # sampled sparsely (NMT every few samples): drawn with a marker at each sample


class ChartPanel(TypedDict):
    unit: str
    from_zero: bool
    seconds: list[float]
    series: list[ChartSeries]


class Chart(TypedDict):
    title: str
    panels: list[ChartPanel]


class SnapshotMark(TypedDict):
    label: str
    seconds: float


class Timeline(TypedDict):
    """What the page's script draws (templates/timeline.js), inlined as JSON."""

    charts: list[Chart]
    snapshots: list[SnapshotMark]


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


def _unit(largest: int) -> tuple[str, int]:
    """The binary unit an axis reads best in, so that its ticks are round numbers of it."""
    return next((name, size) for name, size in _UNITS if largest >= 2 * size or size == 1)


def _points(samples: Sequence[dict[str, Any]], column: str | None) -> list[tuple[float, int]]:
    """(seconds, value) of every sample that has a figure in ``column``."""
    if column is None:
        return []
    return [(float(s["t_ms"]) / 1000, int(s[column])) for s in samples if s.get(column) is not None]


def _panel(points: dict[str, list[tuple[float, int]]], sample_count: int) -> ChartPanel:
    """One panel: its series on the union of their sample times, in the unit its largest value reads best in."""
    values = [y for xy in points.values() for _, y in xy]
    unit_name, unit = _unit(max(abs(y) for y in values))
    seconds = sorted({t for xy in points.values() for t, _ in xy})
    series = []
    for legend, xy in points.items():
        if not xy:
            continue
        by_time = {t: y / unit for t, y in xy}
        series.append(ChartSeries(label=legend, values=[by_time.get(t) for t in seconds],
                                  points=len(xy) < sample_count / 2))
    # From zero unless that flattens the line into its top (NMT committed: mostly the heap).
    return ChartPanel(unit=unit_name, from_zero=min(values) < max(values) / 2, seconds=seconds, series=series)


def _charts(samples: Sequence[dict[str, Any]]) -> tuple[list[Chart], list[str]]:
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
        charts.append(Chart(title=title, panels=[_panel(points, len(samples)) for points in series]))
    return charts, notes


@functools.cache
def _script_assets() -> dict[str, str]:
    """The vendored uPlot and the page's own chart script, exactly as inlined, with their CSP hashes."""
    vendor = resources.files("workbench.report") / "vendor" / "uplot"
    assets = {
        "uplot_js": (vendor / "uPlot.iife.min.js").read_text(encoding="utf-8"),
        "uplot_css": (vendor / "uPlot.min.css").read_text(encoding="utf-8"),
        "timeline_js": (resources.files("workbench.report") / "templates" / "timeline.js").read_text(encoding="utf-8"),
    }
    assets["script_hashes"] = " ".join(_script_hash(assets[name]) for name in ("uplot_js", "timeline_js"))
    return assets


def _script_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def _allowed_scripts(charts: bool, call_sites: dict[str, Any] | None) -> str:
    """The CSP's script-src: the hashes of exactly the scripts on the page, else 'none'."""
    hashes = [_script_assets()["script_hashes"]] if charts else []
    if call_sites is not None and call_sites["flame_js"] is not None:
        hashes.append(_script_hash(flame_script()))
    return " ".join(hashes) or "'none'"


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


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("workbench.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def prepare_renderer() -> None:
    """Compile the template and read the scripts now, e.g. while the worker runs, so that drawing the page later
    costs only the drawing."""
    _environment().get_template("report.html.j2")
    _script_assets()


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
    charts, chart_notes = _charts(samples) if samples else ([], [])
    timeline = Timeline(charts=charts, snapshots=[SnapshotMark(label=s.label, seconds=s.t_ms / 1000)
                                                  for s in report.snapshots])
    size_classes, size_classes_note = _size_classes(report)
    provenance = {k: v for k, v in asdict(report.allocator.provenance).items() if v not in (None, [], "")}
    ledgers = [_ledger(s, s.reconciliation, report.allocator.backend) for s in report.snapshots if s.reconciliation is not None]
    last = report.snapshots[-1] if report.snapshots else None
    template = _environment().get_template("report.html.j2")
    call_sites = call_sites_context(report, run_dir)
    return template.render(
        report=report,
        provenance=provenance,
        findings=findings(report),
        ledgers=ledgers,
        layer_rows=_layer_rows(report),
        charts=charts,
        timeline=timeline,
        assets=_script_assets() if charts else None,
        chart_notes=chart_notes,
        samples_note=samples_note,
        sample_count=len(samples),
        last_label=last.label if last else None,
        mappings=_mappings(last) if last else [],
        size_classes=size_classes,
        size_classes_note=size_classes_note,
        step_results=[json.dumps(result, sort_keys=True) for result in report.step_results],
        call_sites=call_sites,
        script_src=_allowed_scripts(bool(charts), call_sites),
    )
