"""``workbench report RUN_DIR`` and ``workbench diff RUN_A RUN_B``: saved runs, rendered again, never re-run."""

from __future__ import annotations

import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench._errors import EXPECTATIONS_FAILED, BadInput, WorkbenchError
from workbench.report.callsites_diff import render_call_site_diff
from workbench.report.diff import diff_reports, regressions, render_diff
from workbench.report.load import check_samples, load_report
from workbench.report.model import report_to_json
from workbench.report.text import render_text, report_console


class Format(str, Enum):
    text = "text"
    md = "md"
    html = "html"
    json = "json"


def _write_document(text: str) -> None:
    """Markdown and HTML are UTF-8 documents, whatever the terminal's encoding (an ASCII one would mangle them)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "backslashreplace"))
    sys.stdout.buffer.flush()


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<time>-<scenario>-<allocator>).")],
    format: Annotated[Format, typer.Option("--format", "-f", help="How to render it.")] = Format.text,
) -> None:
    """Render a saved run again, without re-running it (text, md, html or json on stdout)."""
    loaded = load_report(run_dir)
    if format is Format.json:
        print(report_to_json(loaded), end="")
    elif format is Format.md:
        from workbench.report.markdown import render_markdown

        _write_document(render_markdown(loaded))
    elif format is Format.html:
        from workbench.report.html import render_html

        directory = run_dir if run_dir.is_dir() else None
        note = check_samples(directory) if directory is not None else None
        if note:
            print(f"workbench: note: {note}", file=sys.stderr)
        _write_document(render_html(loaded, directory))
    else:
        render_text(loaded, report_console())


def diff(
    run_a: Annotated[Path, typer.Argument(help="The run to compare against (e.g. main's).")],
    run_b: Annotated[Path, typer.Argument(help="The run to check (e.g. the change's).")],
    fail_over: Annotated[
        Optional[float], typer.Option(help="Exit 1 when any layer of any snapshot grew by more than this percent.")
    ] = None,
    allow_different: Annotated[
        bool, typer.Option("--allow-different", help="Compare runs of different scenarios too.")
    ] = False,
) -> None:
    """Compare two runs snapshot by snapshot and layer by layer (absolute and relative deltas).

    With --fail-over PCT it is a memory regression check: exit 1 when a layer grew more than PCT percent.
    """
    if fail_over is not None and not (math.isfinite(fail_over) and fail_over >= 0):
        raise BadInput(f"--fail-over {fail_over:g}: expected a finite percentage of at least 0, such as 10")
    a, b = load_report(run_a), load_report(run_b)
    if a.scenario.name != b.scenario.name and not allow_different:
        raise BadInput(f"{run_a} is a run of {a.scenario.name!r} and {run_b} of {b.scenario.name!r}: give "
                       "--allow-different to compare runs of different scenarios")
    diffs = diff_reports(a, b)
    if not diffs:
        raise BadInput(f"{run_a} and {run_b} share no snapshot label: nothing to compare")
    flagged = regressions(diffs, fail_over) if fail_over is not None else []
    render_diff(str(run_a), str(run_b), diffs, report_console(), flagged)
    render_call_site_diff(a, b, report_console())
    if flagged:
        worst = ", ".join(f"{d.label}/{d.layer}" for d in flagged[:5])
        raise WorkbenchError(f"{len(flagged)} layer(s) grew more than {fail_over:g}%: {worst}", EXPECTATIONS_FAILED)
