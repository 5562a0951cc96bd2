"""``workbench run SCENARIO``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workbench._errors import EXPECTATIONS_FAILED, RunFailed, WorkbenchError
from workbench._files import write_atomically
from workbench.cli import options
from workbench.cli._progress import run_progress, runs_progress
from workbench.run.scenario import RunRequest, claim_run_dir, execute, execute_repeated, prepare
from workbench.run.signals import Interrupted


def run(
    scenario: Annotated[str, typer.Argument(help="A bundled scenario's name (see `workbench scenarios`) or a YAML file.")],
    allocator: options.Allocator = None,
    malloc_conf: options.MallocConf = None,
    java_home: options.JavaHome = None,
    hold: options.Hold = None,
    json_path: options.JsonPath = None,
    out: options.Out = None,
    quiet: options.Quiet = False,
    html: options.Html = True,
    trust: options.Trust = False,
    nmt: options.Nmt = None,
    jpype_gc_link: options.JpypeGcLink = False,
    repeat: options.Repeat = 1,
    profile: options.Profile = False,
    profile_interval: options.ProfileInterval = None,
    profile_buffers: options.ProfileBuffers = False,
) -> None:
    """Run a scenario in a JVM under a preloaded allocator and report every layer at each snapshot.

    Exit codes: 0 ok, 1 an expectation failed, 2 bad input, 3 the run failed (the report is still printed and
    written).
    """
    hold_ms = options.duration_ms("--hold", hold)
    repeat = options.repeat_count("--repeat", repeat)
    if json_path is not None:
        options.json_target(json_path, (Path(scenario),))
    prepared = prepare(RunRequest(scenario=scenario, allocator=allocator, malloc_conf=malloc_conf,
                                  java_home=str(java_home) if java_home else None, hold_ms=hold_ms,
                                  trust=trust, nmt=options.nmt_level("--nmt", nmt),
                                  jpype_gc_link=True if jpype_gc_link else None, profile=profile,
                                  profile_buffers=profile_buffers, profile_interval=options.size_bytes("--profile-interval", profile_interval)))
    run_dir = claim_run_dir(prepared, out)
    if repeat == 1:
        with run_progress(prepared.scenario, quiet) as on_event:
            report = execute(prepared, run_dir, quiet=quiet, on_event=on_event, html=html)
    else:
        with runs_progress(prepared.scenario, quiet, repeat) as on_run:
            report = execute_repeated(prepared, run_dir, repeat, quiet=quiet, on_run=on_run, html=html)
    from workbench.report.model import report_to_json  # imported while the worker ran
    from workbench.report.text import render_text, report_console

    if json_path is not None:
        write_atomically(json_path, report_to_json(report))
    render_text(report, report_console())
    if report.interrupted_by is not None:
        raise Interrupted(report.interrupted_by, run_dir.path)
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
