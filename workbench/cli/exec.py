"""``workbench exec -- java ...``, ``workbench attach PID`` and ``workbench snapshot PID``: any JVM program."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from workbench._errors import BadInput, RunFailed
from workbench.cli import options
from workbench.run.program import attach_process, claim_program_run_dir, prepare_program, run_program
from workbench.run.signals import Interrupted, program_exit_code

TYPE_CHECKING = False
if TYPE_CHECKING:
    from workbench.report.model import Report


def _profile_interval(profile: bool, interval_bytes: int | None) -> int | None:
    # run.profile (and with it the report model, pydantic) is imported only for a run that profiles: `exec`
    # starts its program first.
    if not profile and interval_bytes is None:
        return None
    from workbench.run.profile import profile_interval_for

    return profile_interval_for(profile, interval_bytes)


def _show(report: Report, quiet: bool) -> None:
    if quiet:
        return
    from rich.console import Console  # imported while the program ran (run_program's text=True)

    from workbench.report.text import render_text

    # stderr: the program's own stdout stays exactly what it printed.
    render_text(report, Console(stderr=True, width=max(Console(stderr=True).width, 120)))
    print(f"workbench: run directory {report.run_dir}", file=sys.stderr)


def exec_(
    command: Annotated[list[str], typer.Argument(help="The program: java ARGS... (after --).")],
    allocator: Annotated[str, typer.Option(help=options.ALLOCATOR_HELP)] = "jemalloc",
    malloc_conf: options.MallocConf = None,
    out: options.Out = None,
    interval: Annotated[str, typer.Option(help="Sampling interval, e.g. 100ms.")] = "100ms",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the report at the end (nor build "
                                                              "progress).")] = False,
    html: options.Html = True,
    nmt: Annotated[str, typer.Option("--nmt", metavar="LEVEL", help="Native Memory Tracking added to the program: "
                                                                   "off, summary or detail.")] = "summary",
    leave_running: Annotated[bool, typer.Option("--leave-running", help="Let the program run on if `workbench exec` "
                                                                        "itself is killed (default: it is killed too).")]
    = False,
    profile: options.Profile = False,
    profile_interval: options.ProfileInterval = None,
    repeat: Annotated[int, typer.Option(
        "--repeat", help="Run the program N times, each a fresh run (its own JVM) in the run directory's repeat-K: "
                         "the report shows the median run and every figure's median and min-max; `diff` then "
                         "tells noise from change.")] = 1,
) -> None:
    """Run an unmodified JVM program with the allocator, the C probe, the Java agent and NMT added, and report.

    The program's stdout, stderr and stdin pass through unchanged; `workbench exec` exits with the program's exit
    code (2 for bad input, 3 when the measurement failed, e.g. the allocator asked for is not the one answering
    malloc; with --repeat, the first run's exit code that was not 0). `workbench snapshot PID --label L` takes a
    labelled snapshot while it runs; `kill -USR1 PID` makes the probe dump the allocator's full statistics into the
    run directory.
    """
    interval_ms = options.positive_duration_ms("--interval", interval)
    repeat = options.repeat_count("--repeat", repeat)
    level = options.nmt_level("--nmt", nmt)
    assert level is not None
    interval_bytes = options.size_bytes("--profile-interval", profile_interval)
    program = prepare_program(command, allocator, malloc_conf, interval_ms, quiet=quiet, nmt=level,
                              profile_interval=_profile_interval(profile, interval_bytes))
    run_dir = claim_program_run_dir(program, out)
    if repeat == 1:
        result = run_program(program, run_dir, html=html, leave_running=leave_running, text=not quiet)
    else:
        from workbench.run.program_repeats import run_program_repeated

        result = run_program_repeated(program, run_dir, repeat, html=html, leave_running=leave_running,
                                      text=not quiet)
    _show(result.report, quiet)
    if result.report.error is not None:
        raise RunFailed(f"{result.report.error.type}: {result.report.error.message}")
    if result.exit_code != 0:
        raise typer.Exit(program_exit_code(result.exit_code))


def attach(
    pid: Annotated[int, typer.Argument(help="The JVM's process id.")],
    duration: Annotated[Optional[str], typer.Option(help="Stop after this long (default: until it exits or Ctrl-C).")]
    = None,
    out: options.Out = None,
    interval: Annotated[str, typer.Option(help="Sampling interval (NMT through jcmd every 10th sample).")] = "200ms",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the report at the end.")] = False,
    html: options.Html = True,
    profile: options.Profile = False,
    profile_interval: options.ProfileInterval = None,
) -> None:
    """Sample a JVM that is already running with whatever it has: the kernel's view always, the probe's and the
    agent's when they are loaded, else NMT through `jcmd PID VM.native_memory` (NMT must be on in that JVM).
    --profile loads async-profiler into it (jcmd PID JVMTI.agent_load) from the start snapshot to the end."""
    interval_ms = options.positive_duration_ms("--interval", interval)
    duration_ms = options.duration_ms("--duration", duration)
    interval_bytes = _profile_interval(profile, options.size_bytes("--profile-interval", profile_interval))
    result = attach_process(pid, duration_ms, interval_ms, out, html=html, profile_interval=interval_bytes)
    _show(result.report, quiet)
    if result.interrupted_by is not None:
        raise Interrupted(result.interrupted_by, result.report.run_dir or "", what="the report")


def snapshot(
    pid: Annotated[int, typer.Argument(help="The program's process id (as `workbench exec` runs it).")],
    label: Annotated[str, typer.Option(help="The snapshot's label.")] = "manual",
) -> None:
    """Take a labelled snapshot of a program that `workbench exec` is running."""
    from workbench.run.external import request_snapshot

    label = options.label("--label", label)
    try:
        answer = request_snapshot(pid, label)
    except (FileNotFoundError, ConnectionRefusedError):
        raise BadInput(f"snapshot: no `workbench exec` is running process {pid}") from None
    if "error" in answer:
        raise BadInput(f"snapshot: {answer['error']}")
    print(f"snapshot {answer['label']} taken at {answer['t_ms'] / 1000:.2f} s")


