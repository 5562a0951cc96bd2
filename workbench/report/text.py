"""The terminal report: layers as rows, snapshots as columns, each cell the value and its delta to baseline."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.figures import BY_KEY, FIGURES, Figure
from workbench.report import callsites
from workbench.report.callsites_text import render_call_sites
from workbench.report.ledger import OWNER_LABELS, explain_owner, named_parts
from workbench.report.model import JvmSection, Report, Snapshot, settings_line
from workbench.units import format_bytes



def layer_title(report: Report, figure: Figure) -> str:
    """A figure's layer as the tables show it: the allocator's layer is named after the backend that answered."""
    return (report.allocator.backend or report.allocator.name) if figure.layer == "allocator" else figure.layer


def table_rows(report: Report) -> list[tuple[str, Figure]]:
    """The rows of the layers table, top first: (layer as shown, figure)."""
    return [(layer_title(report, figure), figure) for figure in FIGURES]


def _cell(value: int | None, delta: int | None, is_count: bool) -> Text:
    if value is None:
        return Text("-", style="dim")
    text = Text(f"{value:,}" if is_count else format_bytes(value))
    if delta:
        text.append("\n" + format_bytes(delta, signed=True), style="green" if delta < 0 else "yellow")
    return text


def findings(report: Report) -> list[str]:
    """Sentences a reader should take away, derived from the measured values."""
    lines: list[str] = []
    snapshots = report.snapshots
    grown = next((s for s in snapshots if s.arrow and s.arrow.allocated_bytes and s.arrow.requested_bytes), None)
    if grown and grown.arrow:
        lines.append(
            f"Arrow accounts {grown.arrow.allocated_bytes:,} B at '{grown.label}' for {grown.arrow.requested_bytes:,} B "
            f"the vectors need: each buffer is rounded up to a power of two."
        )
        other = grown.deltas.get("nmt.categories.Other.committed_bytes")
        if other is not None:
            lines.append(
                f"NMT 'Other' (Unsafe/direct memory) grew by {other:,} B at '{grown.label}', "
                f"{other / max(grown.arrow.allocated_bytes, 1):.1f}x what Arrow accounts "
                f"(allocation manager: {report.jvm.allocation_manager})."
            )
        last = snapshots[-1]
        kept = last.deltas.get("nmt.categories.Other.committed_bytes")
        if last is not grown and kept is not None and kept >= 64 * 1024 and last.arrow is not None \
                and last.arrow.allocated_bytes == 0:
            lines.append(
                f"At '{last.label}' Arrow accounts {last.arrow.allocated_bytes:,} B, and NMT 'Other' is still "
                f"{kept:+,} B from baseline: memory the allocation manager keeps after close."
            )
    if grown is None and len(snapshots) > 1:
        # No Arrow layer (an unmodified program): say where the off-heap growth shows instead.
        key = "nmt.categories.Other.committed_bytes"
        peak = max(snapshots, key=lambda s: s.deltas.get(key, 0))
        other = peak.deltas.get(key)
        if other:
            parts = [f"NMT 'Other' (Unsafe/direct memory) grew by {other:,} B at '{peak.label}'"]
            for path, name in (("allocator.allocated_bytes", "the allocator's allocated bytes"),
                               ("process.anon_rss_bytes", "anonymous RSS")):
                if path in peak.deltas:
                    parts.append(f"{name} by {peak.deltas[path]:,} B")
            lines.append(", ".join(parts) + f" (since '{report.baseline}').")
    pushed = nmt_pushed_classes(report)
    if pushed is not None:
        lines.append(pushed)
    if report.checks.zero_copy is not None:
        same = "the same address as" if report.checks.zero_copy else "NOT the same address as"
        lines.append(
            f"pyarrow reads '{report.checks.vector}' zero-copy: its data buffer is at {report.checks.pyarrow_address:#x}, "
            f"{same} Java's; sum {report.checks.sum:,} (Java: {report.checks.java_sum:,})."
        )
    return lines + callsites.findings(report)


def nmt_pushed_classes(report: Report) -> str | None:
    """With NMT on under jemalloc: the large size class just above a power of two that grew most since the first
    snapshot, and what a request of exactly that power of two costs there."""
    if report.jvm.nmt is None or report.jvm.nmt.startswith("off") or report.allocator.backend != "jemalloc":
        return None
    if not report.snapshots:
        return None
    first = {c.size_bytes: c.count for c in report.snapshots[0].size_classes or [] if c.kind == "large"}
    best: tuple[int, str, int, int, int] | None = None  # (grown bytes, label, class size, grown count, power of 2)
    for snapshot in report.snapshots[1:]:
        for size_class in snapshot.size_classes or []:
            power = 1 << (size_class.size_bytes.bit_length() - 1)
            # jemalloc has four large classes per doubling: the first above 2^k is 2^k + 2^k/4.
            if size_class.kind != "large" or power < 1 << 20 or size_class.size_bytes != power + power // 4:
                continue
            grown = size_class.count - first.get(size_class.size_bytes, 0)
            if grown > 0 and (best is None or grown * size_class.size_bytes > best[0]):
                best = (grown * size_class.size_bytes, snapshot.label, size_class.size_bytes, grown, power)
    if best is None:
        return None
    total, label, size, count, power = best
    return (f"At '{label}' jemalloc's {format_bytes(size)} class, the one just above {format_bytes(power)}, holds "
            f"{count} more extent(s) than at '{report.snapshots[0].label}' ({total:,} B). NMT ({report.jvm.nmt}) adds "
            f"a header to every malloc, so a request of exactly {format_bytes(power)} (Arrow's buffers and Netty's "
            f"chunks are powers of two) lands in this class: {size - power:,} B ({(size - power) / power:.0%}) more "
            "per allocation than asked for. `--nmt off` measures without NMT.")


def size_classes_note(report: Report) -> str | None:
    """Why the last snapshot shows no size classes; None when it has some to show."""
    if not report.snapshots:
        return "No snapshots were taken."
    last = report.snapshots[-1]
    if last.size_classes is None:
        backend = report.allocator.backend or report.allocator.name
        if backend == "jemalloc":
            return (f"No size classes were recorded at '{last.label}' (jemalloc's statistics had no merged bins and "
                    "large extents, or the report predates size classes).")
        return f"Size classes are available for jemalloc only (this run's allocator: {backend})."
    if not last.size_classes:
        return f"No size class had live allocations at '{last.label}'."
    return None


def render_text(report: Report, console: Console) -> None:
    """Print the report as a table with a header and findings."""
    allocator, jvm = report.allocator, report.jvm
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold", no_wrap=True)
    header.add_column()
    header.add_row("scenario", Text(f"{report.scenario.name}: {report.scenario.description}"))
    header.add_row(
        "allocator",
        Text(
            f"{allocator.name}: {allocator.backend or '?'} {allocator.version or ''} "
            f"({allocator.detected_library or 'not detected'}), {settings_line(allocator)}"
        ),
    )
    header.add_row(
        "JVM",
        Text(
            f"{jvm.vm or '?'} {jvm.version or '?'} ({jvm.java_home}), NMT {jvm.nmt or '?'}, "
            f"allocation manager {jvm.allocation_manager}"
        ),
    )
    gc_line = gc_summary(jvm)
    if gc_line is not None:
        header.add_row("GC", Text(gc_line))
    console.print(header)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    table.add_column("layer", no_wrap=True, style="bold")
    table.add_column("", no_wrap=True)
    for snapshot in report.snapshots:
        table.add_column(Text(f"{snapshot.label}\n{snapshot.t_ms / 1000:.2f} s"), justify="right", no_wrap=True)
    previous_layer = None
    for layer, figure in table_rows(report):
        if previous_layer is not None and layer != previous_layer:
            table.add_section()
        is_count = figure.unit == "count"
        cells = [_cell(figure.value(s), None if is_count else s.deltas.get(figure.key), is_count)
                 for s in report.snapshots]
        table.add_row(Text(layer if layer != previous_layer else ""), Text(figure.label), *cells)
        previous_layer = layer
    console.print(table)
    if report.baseline:
        console.print(Text(f"Second line of a cell: change since '{report.baseline}'.", style="dim"))
    if report.repeats is not None:
        render_spread(report, console)
    render_call_sites(report, console)
    for line in findings(report):
        console.print(Text(f"\u2022 {line}"))
    render_ledger(report, console)
    for leak in report.leaks:
        console.print(Text(f"Leak: allocator '{leak.allocator}' still holds {leak.bytes:,} B:", style="bold yellow"))
        console.print(Text(leak.detail.rstrip(), style="dim"))
    if report.expectations:
        render_expectations(report, console)
    if report.status != "ok" and report.error:
        console.print(Text(f"Run failed: {report.error.type}: {report.error.message}", style="bold red"))
        if report.worker_log:
            console.print(Text(f"Worker log: {report.worker_log}"))


def report_console() -> Console:
    """stdout; when it is not a terminal (a file, a pipe, CI), wide enough that the table is not wrapped."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    return console


def render_expectations(report: Report, console: Console) -> None:
    """What each expectation asked for and what was measured; failed ones first in red."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold",
                  title=Text("Expectations", style="bold"), title_justify="left")
    for column in ("", "expected", "measured", "note"):
        table.add_column(column)
    for result in report.expectations:
        measured = result.measured
        shown = f"{measured:,}" if isinstance(measured, int) and not isinstance(measured, bool) else str(measured)
        table.add_row(Text("ok", style="green") if result.ok else Text("FAILED", style="bold red"),
                      Text(result.describe()), Text(shown), Text(result.note))
    console.print(table)


def gc_summary(jvm: JvmSection) -> str | None:
    """The JVM's collections and what JPype's GC link did, when the run counted them."""
    if jvm.jpype_gc_link is None and jvm.gc_collections is None:
        return None
    parts = []
    if jvm.gc_collections is not None:
        noun = "collection" if jvm.gc_collections == 1 else "collections"
        parts.append(f"{jvm.gc_collections} {noun} ({jvm.gc_time_ms} ms) by the end of the steps")
    if jvm.jpype_gc_link is not None:
        link = "kept (jvm.jpype_gc_link: true)" if jvm.jpype_gc_link else "cut at start-up"
        triggered = f", {jvm.jpype_gc_triggered} triggered by it" if jvm.jpype_gc_triggered is not None else ""
        parts.append(f"JPype's GC link {link}{triggered}")
    return "; ".join(parts)


def render_spread(report: Report, console: Console) -> None:
    """Repeated runs: per figure and snapshot, the median and the min..max of all runs."""
    repeats = report.repeats
    assert repeats is not None
    labels = list(dict.fromkeys(s.label for s in repeats.figures))
    by_place = {(s.label, s.figure): s for s in repeats.figures}
    figures = list(dict.fromkeys(s.figure for s in repeats.figures))
    ok = sum(status == "ok" for status in repeats.statuses)
    console.print(Text(f"{repeats.count} runs ({ok} ok); the table above is run {repeats.shown + 1}, the median by "
                       "anonymous RSS at the last snapshot. Per figure: median, and min..max below it.", style="dim"))
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    table.add_column("figure", no_wrap=True)
    for label in labels:
        table.add_column(Text(label), justify="right", no_wrap=True)
    for key in figures:
        if all(by_place[(label, key)].median is None for label in labels if (label, key) in by_place):
            continue
        cells = []
        for label in labels:
            place = by_place.get((label, key))
            if place is None or place.median is None or place.min is None or place.max is None:
                cells.append(Text("-", style="dim"))
            else:
                cells.append(Text(f"{format_bytes(place.median)}\n{spread_range(place.min, place.max)}"))
        table.add_row(BY_KEY[key].name, *cells)
    console.print(table)


def spread_range(low: int, high: int) -> str:
    return "all equal" if low == high else f"{format_bytes(low)}..{format_bytes(high)}"


def _ledger_snapshot(report: Report) -> Snapshot | None:
    """The snapshot whose ledger the sentences are said of: the one with the largest anonymous RSS change."""
    attributed = [s for s in report.snapshots[1:] if s.reconciliation is not None and s.reconciliation.owners]
    return max(attributed, key=lambda s: abs(s.deltas.get("process.anon_rss_bytes", 0)), default=None)


def render_ledger(report: Report, console: Console) -> None:
    """The ledger by address: owners as rows, snapshots as columns (the kernel's resident bytes and their change),
    the named parts of the other anonymous mappings and the unexplained rest with its bound; then, in words, what
    the owners' changes are beside the other layers at the snapshot that grew most."""
    shown = _ledger_snapshot(report)
    if shown is None or shown.reconciliation is None or shown.reconciliation.owners is None:
        return
    backend = report.allocator.backend
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, title_justify="left",
                  title="Ledger by address: the anonymous RSS by owner (the kernel's resident bytes)")
    table.add_column("owner", no_wrap=True)
    ledgers = [s.reconciliation for s in report.snapshots]
    for snapshot in report.snapshots:
        table.add_column(Text(snapshot.label), justify="right", no_wrap=True)
    for index, line in enumerate(shown.reconciliation.owners):
        cells = []
        for ledger in ledgers:
            owner = ledger.owners[index] if ledger is not None and ledger.owners else None
            cells.append(_cell(owner.resident_bytes, owner.delta_bytes, False) if owner is not None
                         else Text("-", style="dim"))
        table.add_row(Text(OWNER_LABELS[line.owner]), *cells)
    table.add_section()
    for index, (label, _, _) in enumerate(named_parts(shown.reconciliation, backend)):
        cells = []
        for ledger in ledgers:
            if ledger is None or ledger.owners is None:
                cells.append(Text("-", style="dim"))
                continue
            _, value, _ = named_parts(ledger, backend)[index]
            text = Text(format_bytes(value, signed=True) if value is not None else "-")
            if label.strip() == "unexplained" and ledger.bound_bytes is not None and value is not None:
                over = abs(value) > ledger.bound_bytes
                text.append(f"\n{'over' if over else 'within'} ±{format_bytes(ledger.bound_bytes)}",
                            style="bold red" if over else "green")
            cells.append(text)
        table.add_row(Text(label.strip()), *cells)
    console.print(table)
    console.print(Text("Resident bytes, and below them the change since the baseline; the parts below the line "
                       "are changes of the other anonymous mappings.", style="dim"))
    said = [(line, explain_owner(line, shown.reconciliation)) for line in shown.reconciliation.owners
            if line.delta_bytes and line.owner in ("java-heap", "malloc-arenas")]
    for line, sentence in said:
        if sentence:
            console.print(Text(f"\u2022 At '{shown.label}', {OWNER_LABELS[line.owner]}: {sentence}."))
    for label, value, why in named_parts(shown.reconciliation, backend):
        if label.strip() == "unexplained":
            console.print(Text(f"\u2022 At '{shown.label}', unexplained {format_bytes(value, signed=True) if value is not None else '-'}: {why}."))
