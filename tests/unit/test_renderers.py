"""Every renderer on fabricated reports with exact figures: terminal, Markdown, HTML, compare and diff."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

from rich.console import Console

from tests.unit import reports
from workbench.figures import FIGURES
from workbench.report.compare import ComparedRun, render_compare
from workbench.report.diff import diff_reports, regressions, render_diff
from workbench.report.html import render_html
from workbench.report.markdown import render_markdown
from workbench.report.model import Report
from workbench.report.text import render_text

VOID = {"meta", "br", "col", "img", "input", "link", "hr", "path", "use", "rect", "circle", "line", "polyline",
        "polygon", "stop", "ellipse"}


def recorded(render: Callable[..., None], *args: object) -> list[str]:
    """What a rich renderer printed, line by line, without trailing blanks."""
    console = Console(record=True, width=200)
    render(*args, console)
    return [line.rstrip() for line in console.export_text().splitlines()]


class _Page(HTMLParser):
    """The cells of every table by its class (and snapshot), each as (text, title); fails on a tag closed out of
    order."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self._table: list[list[tuple[str, str | None]]] | None = None
        self._cell: list[str] | None = None
        self._title: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.open.append(tag)
        attributes = dict(attrs)
        if tag == "table":
            name = attributes.get("class") or ""
            snapshot = attributes.get("data-snapshot")
            self._table = self.tables.setdefault(f"{name}:{snapshot}" if snapshot else name, [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell, self._title = [], attributes.get("title")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # self-closed (SVG): nothing to close

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.open and self.open[-1] == tag, (tag, self.open[-3:])
        self.open.pop()
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table[-1].append(("".join(self._cell).strip(), self._title))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def page(report: Report) -> _Page:
    parsed = _Page()
    parsed.feed(render_html(report, None))
    parsed.close()
    assert parsed.open == [], parsed.open
    return parsed


def test_terminal_table_shows_arrows_512_kib_and_its_delta_line() -> None:
    lines = recorded(render_text, reports.jemalloc_report())
    row = next(i for i, line in enumerate(lines) if "allocated (accounted)" in line)
    assert lines[row].split() == ["allocated", "(accounted)", "0", "B", "512.0", "KiB", "0", "B"]
    assert lines[row + 1].split() == ["+512.0", "KiB"]
    count = next(i for i, line in enumerate(lines) if "anon mappings (count)" in line)
    assert lines[count].split()[-3:] == ["148", "152", "152"] and lines[count + 1].strip() == ""
    # The allocator's layer is named after the backend that answered malloc.
    assert next(line for line in lines if line.lstrip().startswith("jemalloc ")).split()[:4] == \
        ["jemalloc", "allocated", "20.0", "MiB"]


def test_terminal_table_has_one_row_per_figure_and_dashes_where_glibc_has_none() -> None:
    lines = recorded(render_text, reports.glibc_report())
    labels = [figure.label for figure in FIGURES]
    rows = [line for line in lines if any(f" {label}  " in line for label in labels)]
    assert len(rows) == len(FIGURES) == 21
    assert [line.split()[-3:] for line in rows if line.endswith(" -")] == [
        ["active", "-", "-"], ["metadata", "-", "-"], ["resident", "-", "-"], ["retained", "-", "-"],
    ]


def test_markdown_has_the_exact_layer_row() -> None:
    markdown = render_markdown(reports.jemalloc_report()).splitlines()
    assert "| Arrow | allocated (accounted) | 0 B | 512.0 KiB (+512.0 KiB) | 0 B |" in markdown
    assert "| jemalloc | retained | 8.0 MiB | 8.0 MiB | 8.0 MiB |" in markdown
    assert "| process | anon mappings (count) | 148 | 152 | 152 |" in markdown


def test_html_ledger_rows_carry_exact_bytes_in_their_titles() -> None:
    parsed = page(reports.jemalloc_report())
    assert [name for name in parsed.tables if name.startswith("ledger:")] == \
        ["ledger:baseline", "ledger:allocated", "ledger:closed"]
    rows = {row[0][0]: row for row in parsed.tables["ledger:allocated"][1:]}
    assert rows["Arrow: accounted"][1] == ("+512.0 KiB", "+524,288 B")
    assert rows["Arrow: accounted"][2] == ("+3.5 MiB", "+3,670,016 B")
    assert rows["process: anonymous RSS"][1] == ("+10.1 MiB", "+10,596,352 B")
    assert rows["unexplained"][1] == ("+2.8 MiB", "+2,965,504 B")
    assert rows["JVM mappings (NMT committed − malloc)"][1] == ("+916.0 KiB", "+937,984 B")
    layers = {row[1][0]: row for row in parsed.tables["layers"] if len(row) > 1}
    assert layers["allocated (accounted)"][3][1] == "524,288 B"


def test_html_without_samples_says_so_and_draws_no_chart() -> None:
    html = render_html(reports.jemalloc_report(), None)
    assert "No run directory: the timeline is not available." in html
    assert 'class="chart"' not in html and "<script" not in html and "script-src 'none'" in html


def test_compare_has_one_column_per_run_and_the_exact_values() -> None:
    runs = [ComparedRun("glibc", reports.glibc_report()), ComparedRun("jemalloc", reports.jemalloc_report())]
    lines = recorded(render_compare, runs)
    header = next(line for line in lines if "glibc" in line)
    assert header.split() == ["glibc", "jemalloc"]
    allocated = lines.index("allocated")
    table = lines[allocated:]
    assert next(line for line in table if line.startswith(" allocator resident")).split() == \
        ["allocator", "resident", "-", "30.4", "MiB"]
    assert next(line for line in table if line.startswith(" Arrow allocated")).split() == \
        ["Arrow", "allocated", "512.0", "KiB", "512.0", "KiB"]
    names = [line.split("  ")[0].strip() for line in table[4:12]]
    assert names == ["anonymous RSS", "allocator allocated", "allocator resident", "allocator retained",
                     "allocator mapped", "NMT committed", "Arrow allocated", "time since previous snapshot"]


def test_diff_of_a_report_with_itself_is_all_zero() -> None:
    report = reports.jemalloc_report()
    diffs = diff_reports(report, report)
    assert len(diffs) == 3 * 8
    assert {d.delta_bytes for d in diffs} == {0} and regressions(diffs, 0) == []
    assert [(d.layer, d.a_bytes) for d in diffs if d.label == "allocated"][:2] == [
        ("arrow.allocated_bytes", 524_288), ("nmt.categories.Other.committed_bytes", 4_194_304 + 10 * reports.KIB),
    ]


def test_diff_flags_a_figure_that_doubled_over_10_percent() -> None:
    doubled = {**reports.DELTAS, "arrow.allocated_bytes": 2 * 524_288, "arrow.peak_bytes": 2 * 524_288}
    a = reports.report([reports.snapshot("baseline", 0, reports.BASELINE),
                        reports.snapshot("allocated", 60, reports.grown(reports.DELTAS))])
    b = reports.report([reports.snapshot("baseline", 0, reports.BASELINE),
                        reports.snapshot("allocated", 60, reports.grown(doubled))])
    flagged = regressions(diff_reports(a, b), 10)
    assert [(d.label, d.layer, d.a_bytes, d.b_bytes, d.relative) for d in flagged] == [
        ("allocated", "arrow.allocated_bytes", 524_288, 1_048_576, 1.0),
    ]
    lines = recorded(render_diff, "a", "b", diff_reports(a, b))
    row = next(line for line in lines if "Arrow allocated" in line and "KiB" in line)
    assert row.split()[-7:] == ["512.0", "KiB", "1.0", "MiB", "+512.0", "KiB", "+100.0%"]


def test_the_nmt_size_class_finding_counts_growth_since_the_first_snapshot_only() -> None:
    import dataclasses as dc

    from tests.unit.reports import BASELINE, grown, report, snapshot
    from workbench.probes.allocator import SizeClass
    from workbench.report.text import nmt_pushed_classes

    mib = 1024 * 1024
    before = [SizeClass("large", 5 * mib // 4, 4, 5 * mib)]  # 1.25 MiB extents already there: not the run's doing
    after = before + [SizeClass("large", 5 * mib, 2, 10 * mib), SizeClass("large", 6 * mib, 1, 6 * mib)]
    run = report([snapshot("baseline", 1.0, BASELINE, size_classes=before),
                  snapshot("held", 2.0, grown({}), size_classes=after)])
    line = nmt_pushed_classes(run)
    assert line is not None
    assert "At 'held' jemalloc's 5.0 MiB class, the one just above 4.0 MiB, holds 2 more extent(s)" in line
    assert "(10,485,760 B)" in line and "1,048,576 B (25%) more per allocation" in line
    assert nmt_pushed_classes(dc.replace(run, jvm=dc.replace(run.jvm, nmt="off: not asked for (nmt: off)"))) is None
    glibc = dc.replace(run, allocator=dc.replace(run.allocator, backend="glibc"))
    assert nmt_pushed_classes(glibc) is None
