"""Repeated runs: the spread of each figure, the run that stands for them, and diff's noise test."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from tests.unit.reports import BASELINE, MIB, grown, report, snapshot
from workbench.report.diff import LayerDiff, diff_reports, regressions, render_diff
from workbench.report.model import Report, report_from_dict, report_to_dict
from workbench.report.repeats import median_run, spread, with_repeats
from workbench.report.text import render_text

ANON = "process.anon_rss_bytes"


def _run(anon_growth: int, malloc_growth: int = 0) -> Report:
    return report([snapshot("baseline", 100.0, BASELINE),
                   snapshot("held", 200.0, grown({ANON: anon_growth, "nmt.malloc_total_bytes": malloc_growth}))])


def test_spread_takes_a_measured_median_and_skips_what_was_not_measured() -> None:
    assert spread("held", ANON, [5, None, 1, 9, 3]) == dataclasses.replace(
        spread("held", ANON, [5, None, 1, 9, 3]), median=3, min=1, max=9)
    nothing = spread("held", ANON, [None, None])
    assert (nothing.median, nothing.min, nothing.max) == (None, None, None)


def test_the_report_shown_is_the_median_run_and_keeps_every_runs_figures() -> None:
    runs = [_run(30 * MIB), _run(10 * MIB), _run(20 * MIB)]
    assert median_run(runs) == 2
    combined = with_repeats(runs, ["r1", "r2", "r3"])
    assert combined.repeats is not None and combined.repeats.shown == 2
    assert combined.snapshots == runs[2].snapshots
    held = next(s for s in combined.repeats.figures if s.label == "held" and s.figure == ANON)
    base = BASELINE[ANON]
    assert held.values == [base + 30 * MIB, base + 10 * MIB, base + 20 * MIB]
    assert (held.median, held.min, held.max) == (base + 20 * MIB, base + 10 * MIB, base + 30 * MIB)
    # It survives JSON.
    assert report_from_dict(report_to_dict(combined)) == combined
    console = Console(width=200, record=True)
    render_text(combined, console)
    text = console.export_text()
    assert "3 runs (3 ok); the table above is run 3" in text
    assert "all equal" in text  # Arrow's figures do not vary


def test_a_failed_run_makes_the_repeated_run_fail() -> None:
    failed = dataclasses.replace(_run(10 * MIB), status="failed")
    combined = with_repeats([_run(20 * MIB), failed, _run(30 * MIB)], ["a", "b", "c"])
    assert combined.status == "failed" and combined.repeats is not None
    assert combined.repeats.statuses == ["ok", "failed", "ok"]


def test_diff_compares_medians_and_does_not_flag_overlapping_ranges() -> None:
    a = with_repeats([_run(10 * MIB, 4 * MIB), _run(12 * MIB, 15 * MIB), _run(11 * MIB, 5 * MIB)], ["1", "2", "3"])
    b = with_repeats([_run(11 * MIB, 15 * MIB), _run(13 * MIB, 16 * MIB), _run(12 * MIB, 4 * MIB)], ["4", "5", "6"])
    diffs = {(d.label, d.layer): d for d in diff_reports(a, b)}
    malloc = diffs[("held", "nmt.malloc_total_bytes")]
    base = BASELINE["nmt.malloc_total_bytes"]
    assert (malloc.a_bytes, malloc.b_bytes) == (base + 5 * MIB, base + 15 * MIB)  # +200 %, but both ranges overlap
    assert malloc.within_noise
    assert malloc not in regressions(list(diffs.values()), 10)
    # A change beyond both ranges is flagged, repeated or not.
    c = with_repeats([_run(40 * MIB), _run(41 * MIB), _run(42 * MIB)], ["7", "8", "9"])
    far = {(d.label, d.layer): d for d in diff_reports(a, c)}[("held", ANON)]
    assert not far.within_noise and far in regressions([far], 10)
    single = _run(11 * MIB)
    inside = {(d.label, d.layer): d for d in diff_reports(a, single)}[("held", ANON)]
    assert inside.within_noise  # one run inside A's range
    console = Console(width=200, record=True)
    render_diff("a", "c", diff_reports(a, c), console, [far])
    assert "outside both ranges" in console.export_text()


def test_single_runs_have_no_noise_test() -> None:
    d = LayerDiff("held", ANON, 100, 100)
    assert not d.within_noise and d.a_range is None
