"""``workbench compare SCENARIO --allocators glibc,jemalloc,...``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from workbench._errors import BadInput, RunFailed
from workbench.cli._progress import run_progress, runs_progress
from workbench._files import write_atomically
from workbench.cli import options
from workbench.run.scenario import PreparedRun, RunRequest, claim_run_dir, execute, execute_repeated, prepare
from workbench.report.model import Report
from workbench.run.run_dir import RunDir
from workbench.run.signals import Interrupted
from workbench.report.compare import ComparedRun, compare_to_json, render_compare
from workbench.report.callsites import findings as call_site_findings
from workbench.report.callsites_text import render_compare_call_sites
from workbench.report.text import report_console


def _allocator_specs(allocators: str | None, allocator: list[str] | None) -> list[str]:
    """Every allocator to run: NAME or NAME@key:value,... (settings are checked when each run is prepared)."""
    specs = [s.strip() for s in (allocators or "").split(",") if s.strip()] + [s.strip() for s in allocator or []]
    if not specs:
        raise BadInput("--allocators: expected a comma-separated list such as glibc,jemalloc,tcmalloc,mimalloc")
    return specs


def _repeated(run: PreparedRun, run_dir: RunDir, repeat: int, quiet: bool, label: str) -> Report:
    with runs_progress(run.scenario, quiet, repeat, f" under {label}") as on_run:
        return execute_repeated(run, run_dir, repeat, quiet=True, on_run=on_run)


def compare(
    scenario: Annotated[str, typer.Argument(help="A bundled scenario's name or a YAML file.")],
    allocators: Annotated[
        Optional[str], typer.Option(help="Comma-separated allocators, e.g. glibc,jemalloc,tcmalloc,mimalloc.")
    ] = None,
    allocator: Annotated[
        Optional[list[str]],
        typer.Option("--allocator", "-a", help="One more allocator, repeatable, with its settings as NAME@key:value,... "
                                               "(commas allowed), e.g. 'jemalloc@background_thread:true' or "
                                               "'glibc@arena_max:2'."),
    ] = None,
    java_home: options.JavaHome = None,
    hold: options.Hold = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write workbench.compare/1 JSON here.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="A directory for the runs, one subdirectory each.")] = None,
    quiet: options.Quiet = False,
    trust: options.Trust = False,
    nmt: Annotated[Optional[str], typer.Option(
        "--nmt", metavar="LEVELS", help="NMT level(s), comma-separated: off, summary, detail. With more than one, "
                                        "every allocator runs once per level (e.g. --nmt off,summary shows what "
                                        "NMT's own headers cost).")] = None,
    jpype_gc_link: options.JpypeGcLink = False,
    repeat: options.Repeat = 1,
    profile: options.Profile = False,
    profile_interval: options.ProfileInterval = None,
) -> None:
    """Run one scenario once per allocator, each in a fresh worker, and show them side by side per snapshot.

    Exit codes: 0 ok, 2 bad input, 3 at least one run failed (all reports are still shown and written).
    """
    specs = _allocator_specs(allocators, allocator)
    hold_ms = options.duration_ms("--hold", hold)
    repeat = options.repeat_count("--repeat", repeat)
    if json_path is not None:
        options.json_target(json_path, (Path(scenario),))
    levels: list[str | None] = [options.nmt_level("--nmt", level.strip()) for level in nmt.split(",")] \
        if nmt is not None else [None]
    if len(set(levels)) != len(levels):
        raise BadInput(f"--nmt: {nmt!r} names a level twice")
    variants = [(spec, level) for spec in specs for level in levels]
    interval_bytes = options.size_bytes("--profile-interval", profile_interval)
    # Everything is resolved (and jemalloc built) before the first run starts, so bad input fails at once.
    prepared = [
        prepare(RunRequest(scenario=scenario, allocator=spec,
                           java_home=str(java_home) if java_home else None, hold_ms=hold_ms,
                           trust=trust, nmt=level, jpype_gc_link=True if jpype_gc_link else None,
                           profile=profile, profile_interval=interval_bytes))
        for spec, level in variants
    ]
    console = report_console()
    runs = []
    for (_, level), run in zip(variants, prepared):
        label = run.allocator_label + (f" nmt:{level}" if len(levels) > 1 else "")
        run_dir = claim_run_dir(run, out / re.sub(r"[^A-Za-z0-9_.-]+", "-", label) if out else None)
        if repeat == 1:
            with run_progress(run.scenario, quiet, f" under {label}") as on_event:
                runs.append(ComparedRun(label, execute(run, run_dir, quiet=True, on_event=on_event)))
        else:
            runs.append(ComparedRun(label, _repeated(run, run_dir, repeat, quiet, label)))
        if runs[-1].report.interrupted_by is not None:
            break
    if json_path is not None:
        write_atomically(json_path, compare_to_json(prepared[0].scenario.name, runs))
    render_compare(runs, console)
    render_compare_call_sites([(run.label, run.report) for run in runs], console)
    for compared in runs:  # --profile: each run's call sites in one sentence (its report.json has them all)
        sites = call_site_findings(compared.report)
        if sites:
            console.print(Text(f"{compared.label}: {sites[0]}"))
    stopped = next((run.report for run in runs if run.report.interrupted_by is not None), None)
    if stopped is not None and stopped.interrupted_by is not None:
        raise Interrupted(stopped.interrupted_by, out or stopped.run_dir or "runs/", "what was measured")
    failed = [run.label for run in runs if run.report.status != "ok"]
    if failed:
        raise RunFailed(f"scenario {prepared[0].scenario.name} failed under {', '.join(failed)}")
