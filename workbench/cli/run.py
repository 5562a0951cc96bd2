"""``workbench run SCENARIO``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from workbench._errors import EXPECTATIONS_FAILED, BadInput, RunFailed, WorkbenchError
from workbench._files import write_atomically
from workbench.cli import app
from workbench.cli._progress import run_progress
from workbench.run.scenario import RunRequest, create_run_dir, execute, prepare
from workbench.report.model import report_to_json
from workbench.report.text import render_text, report_console
from workbench.units import parse_duration_ms


def writable_target(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise BadInput(f"--json {path}: is a directory (expected a file path)")
    if not parent.is_dir():
        raise BadInput(f"--json {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"--json {path}: directory {parent} is not writable")
    return path


def parse_hold(hold: str | None) -> int | None:
    if hold is None:
        return None
    try:
        return parse_duration_ms(hold)
    except ValueError as exc:
        raise BadInput(f"--hold: {exc}") from None


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="A bundled scenario's name (see `workbench scenarios`) or a YAML file.")],
    allocator: Annotated[
        Optional[str], typer.Option(help="jemalloc (the system's libjemalloc2), glibc (nothing preloaded), or a .so path.")
    ] = None,
    malloc_conf: Annotated[Optional[str], typer.Option(help="MALLOC_CONF for the worker, e.g. 'narenas:2'.")] = None,
    java_home: Annotated[Optional[Path], typer.Option(help="The JDK to start (default: JAVA_HOME, else JPype's).")] = None,
    hold: Annotated[Optional[str], typer.Option(help="Duration of every hold step, e.g. 500ms or 2s.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the report as JSON here.")] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="The run directory (new or empty); default runs/<time>-<scenario>-<allocator>.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress line (there is none when piped).")] = False,
    html: Annotated[bool, typer.Option(help="Write report.html into the run directory (about 1 s with matplotlib; "
                                             "`workbench report RUN --format html` draws it later).")] = True,
) -> None:
    """Run a scenario in a JVM under a preloaded allocator and report every layer at each snapshot.

    Exit codes: 0 ok, 2 bad input, 3 the run failed (the report is still printed and written).
    """
    hold_ms = parse_hold(hold)
    if json_path is not None:
        writable_target(json_path)
    prepared = prepare(
        RunRequest(
            scenario=scenario, allocator=allocator, malloc_conf=malloc_conf,
            java_home=str(java_home) if java_home else None, hold_ms=hold_ms,
        )
    )
    run_dir = create_run_dir(prepared, out)
    with run_progress(prepared.scenario, quiet) as on_event:
        report = execute(prepared, run_dir, quiet=quiet, on_event=on_event, html=html)
    if json_path is not None:
        write_atomically(json_path, report_to_json(report))
    render_text(report, report_console())
    if report.interrupted_by is not None:
        raise WorkbenchError(f"interrupted by {report.interrupted_by}; the partial report is in {run_dir}",
                             130 if report.interrupted_by == "SIGINT" else 143)
    if report.status != "ok":
        assert report.error is not None
        raise RunFailed(f"scenario {report.scenario.name} failed: {report.error.type}: {report.error.message}")
    failed = report.expectations_failed
    if failed:
        raise WorkbenchError(
            f"{len(failed)} of {len(report.expectations)} expectations of {report.scenario.name} failed: "
            + "; ".join(f"{r.describe()} (measured {r.measured})" for r in failed[:3]),
            EXPECTATIONS_FAILED,
        )
