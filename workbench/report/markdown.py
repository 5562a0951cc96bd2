"""The Markdown report (GitHub flavour): the layers table, the findings, each snapshot's ledger and the size
classes."""

from __future__ import annotations

from collections.abc import Sequence

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
from workbench.report.model import TOP_SIZE_CLASSES, Report, settings_line
from workbench.report.callsites_markdown import call_site_section
from workbench.report.text import findings, size_classes_note, table_rows
from workbench.units import format_bytes


def _escape(text: str) -> str:
    # A '|' would end the cell; a '<' would open HTML that GitHub renders (or strips); a newline would end the row.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\r", " ").replace("\n", " ")


def _table(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GFM table; ``align`` holds ``l`` or ``r`` per column; cells are escaped here."""
    lines = ["| " + " | ".join(_escape(cell) for cell in header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    return lines


def _exact(value: int | None, signed: bool = True) -> str:
    """Human units and the exact figure: ``+512.0 KiB (+524,288 B)``."""
    if value is None:
        return "-"
    human = format_bytes(value, signed=signed)
    if abs(value) < 1024:
        return human
    return f"{human} ({value:+,} B)" if signed else f"{human} ({value:,} B)"


def _size_classes(report: Report) -> list[str]:
    """The last snapshot's largest size classes (jemalloc), or why there are none."""
    if not report.snapshots:
        return []
    last = report.snapshots[-1]
    lines = [f"## Size classes at '{_escape(last.label)}'", ""]
    note = size_classes_note(report)
    if note is not None or not last.size_classes:
        return lines + [_escape(note or ""), ""]
    shown = last.size_classes[:TOP_SIZE_CLASSES]
    rows = [[c.kind, _exact(c.size_bytes, signed=False), f"{c.count:,}", _exact(c.bytes, signed=False)]
            for c in shown]
    return lines + [
        f"Top {len(shown)} of {len(last.size_classes)} by live bytes, all arenas merged: small bins (live regions x "
        "size) and large extents.",
        "",
        *_table(["kind", "size class", "live", "bytes"], "lrrr", rows),
        "",
    ]


def _owners(reconciliation: Reconciliation, backend: str | None) -> list[str]:
    """The anonymous RSS by owner (found by address), then the named parts of the other anonymous mappings."""
    if reconciliation.owners is None:
        return []
    rows = [[OWNER_LABELS[line.owner], _exact(line.resident_bytes), _exact(line.delta_bytes),
             _escape(explain_owner(line, reconciliation))] for line in reconciliation.owners]
    rows += [[_escape(label), "", _exact(value) if value is not None else "-", _escape(why)]
             for label, value, why in named_parts(reconciliation, backend)]
    lines = ["", "By owner (the kernel's resident anonymous bytes, found by address):", "",
             *_table(["owner", "resident", "change", "beside it"], "lrrl", rows)]
    if reconciliation.rounding is not None:
        lines += ["", f"Size-class rounding: {_escape(explain_rounding(reconciliation.rounding))}."]
    return lines


def _ledger(label: str, reconciliation: Reconciliation, backend: str | None = None) -> list[str]:
    rows = [
        [line_label(line), _exact(line.bytes), _exact(line.delta_to_next) if line.delta_to_next is not None else "",
         explain_line(line, reconciliation)]
        for line in reconciliation.lines
    ]
    rows.append(["JVM mappings (NMT committed - malloc)", _exact(reconciliation.jvm_mapped_bytes), "", ""])
    rows.append(["unexplained", _exact(reconciliation.unexplained_bytes), "", ""])
    return [
        f"### Ledger: {_escape(label)}",
        "",
        f"{_escape(describe_basis(reconciliation))}.",
        "",
        *_table(["layer", "bytes", "to next layer", "explanation"], "lrrl", rows),
        *_owners(reconciliation, backend),
        "",
        f"_{_escape(explain_unexplained(reconciliation))}_",
        "",
    ]


def render_markdown(report: Report) -> str:
    """The report as GitHub Markdown: header, layers x snapshots (value and change since baseline), findings, ledgers,
    and the last snapshot's size classes."""
    allocator, jvm = report.allocator, report.jvm
    lines = [
        f"# {_escape(report.scenario.name)}",
        "",
        _escape(report.scenario.description),
        "",
        f"- status: **{_escape(report.status)}**",
        f"- allocator: {_escape(allocator.name)} (backend {_escape(allocator.backend or 'not detected')} "
        f"{_escape(allocator.version or '')}), `{_escape(settings_line(allocator))}`",
        f"- JVM: {_escape(jvm.vm or '?')} {_escape(jvm.version or '?')}, NMT {_escape(jvm.nmt or '?')}, "
        f"allocation manager {_escape(jvm.allocation_manager)}",
    ]
    if report.error is not None:
        lines.append(f"- error: {_escape(report.error.type)}: {_escape(report.error.message)}")
    lines += ["", "## Layers by snapshot", ""]
    if report.snapshots:
        header = ["layer", ""] + [f"{s.label} ({s.t_ms / 1000:.2f} s)" for s in report.snapshots]
        rows = []
        for layer, figure in table_rows(report):
            cells = [layer, figure.label]
            for snapshot in report.snapshots:
                value = figure.value(snapshot)
                if value is None:
                    cells.append("-")
                elif figure.unit == "count":
                    cells.append(f"{value:,}")
                else:
                    delta = snapshot.deltas.get(figure.key)
                    cells.append(format_bytes(value) + (f" ({format_bytes(delta, signed=True)})" if delta else ""))
            rows.append(cells)
        lines += _table(header, "ll" + "r" * len(report.snapshots), rows)
        if report.baseline:
            lines += ["", f"In parentheses: change since '{_escape(report.baseline)}'."]
    else:
        lines.append("No snapshots were taken.")
    lines += ["", "## Findings", ""]
    lines += [f"- {_escape(line)}" for line in findings(report)] or ["No findings."]
    lines += ["", *call_site_section(report, _table)] if report.profile is not None else []
    lines += ["", "## Reconciliation", ""]
    ledgers = [(s.label, s.reconciliation) for s in report.snapshots if s.reconciliation is not None]
    for label, reconciliation in ledgers:
        lines += _ledger(label, reconciliation, report.allocator.backend)
    if not ledgers:
        lines += ["No snapshot has a reconciliation (it needs the process's anonymous RSS).", ""]
    lines += _size_classes(report)
    return "\n".join(lines).rstrip("\n") + "\n"
