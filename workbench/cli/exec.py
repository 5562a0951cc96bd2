"""``workbench exec -- java ...``, ``workbench attach PID`` and ``workbench snapshot PID``: any JVM program."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from workbench._errors import BadInput, WorkbenchError
from workbench._files import write_atomically
from workbench.toolchain.allocators import resolve_allocator
from workbench.toolchain.maven import kernels_classpath
from workbench.toolchain.probe import ensure_probe
from workbench.cli import app
from workbench.cli.run import parse_hold
from workbench.run.external import ControlServer, ExternalSampler, find_jcmd, request_snapshot
from workbench.run.scenario import new_run_dir, run_dir_name
from workbench.probes import jvm_agent, native_probe
from workbench.report.build import with_deltas
from workbench.report.model import (
    AllocatorSection,
    Checks,
    JvmSection,
    ProgramSection,
    Report,
    ScenarioSection,
    report_to_json,
)
from workbench.report.text import render_text
from workbench.report.timeline import write_timeline


def _private_dir(directory: Path) -> Path:
    """The per-user socket directory: created 0700, refused when it is a symlink or anyone else can enter it."""
    if directory.is_symlink():
        raise BadInput(f"{directory}: is a symbolic link; refusing it as the private socket directory")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise BadInput(f"{directory}: must be owned by you with mode 0700 (it holds the probe's sockets)")
    return directory


def _report(sampler: ExternalSampler, argv: list[str], exit_code: int | None, allocator_name: str,
            library: str | None, malloc_conf: str | None, interrupted_by: str | None, run_dir: Path,
            java_home: str, shown: list[str]) -> Report:
    from pydantic import TypeAdapter

    from workbench.report.model import Snapshot

    raw = list(sampler.snapshots)
    if sampler.latest is not None and (not raw or sampler.latest["t_ms"] > raw[-1]["t_ms"]):
        raw.append(sampler.latest)
    adapter = TypeAdapter(Snapshot)
    snapshots, baseline = with_deltas([adapter.validate_python(s) for s in raw], "unknown")
    info = sampler.allocator_info or {}
    jvm = sampler.jvm_info or {}
    hs_err = next((str(p) for p in sorted(run_dir.glob("hs_err_pid*.log"))), None)
    return Report(
        scenario=ScenarioSection(name="exec" if exit_code is not None else f"attach {sampler.pid}",
                                 description=_shorten(shlex.join(shown)), source=shlex.join(shown)),
        allocator=AllocatorSection(
            name=allocator_name, library=library, version=info.get("version"), malloc_conf=malloc_conf,
            backend=info.get("backend"), detected_library=info.get("library"), config_prof=None, config_stats=None,
        ),
        jvm=JvmSection(java_home=java_home, version=jvm.get("java_version"), vm=jvm.get("vm_name"), options=argv[1:],
                       allocation_manager="unknown", nmt="summary" if any(s.nmt for s in snapshots) else "off",
                       pyarrow_memory_pool=None),
        snapshots=snapshots, checks=Checks(), status="ok", baseline=baseline, run_dir=str(run_dir),
        worker_log=None, hs_err=hs_err, interrupted_by=interrupted_by,
        program=ProgramSection(argv=argv, pid=sampler.pid, exit_code=exit_code, sources=dict(sampler.sources)),
    )


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit // 2 - 2] + " ... " + text[-(limit // 2 - 3):]


def _finish(report: Report, run_dir: Path, quiet: bool) -> None:
    from workbench.report.html import render_html

    write_timeline(run_dir / "samples.jsonl", run_dir / "timeline.parquet")
    write_atomically(run_dir / "report.json", report_to_json(report))
    write_atomically(run_dir / "report.html", render_html(report, run_dir))
    if not quiet:
        # stderr: the program's own stdout stays exactly what it printed.
        render_text(report, Console(stderr=True, width=max(Console(stderr=True).width, 120)))
        print(f"workbench: run directory {run_dir}", file=sys.stderr)


@app.command("exec", context_settings={"ignore_unknown_options": True})
def exec_(
    command: Annotated[list[str], typer.Argument(help="The program: java ARGS... (after --).")],
    allocator: Annotated[str, typer.Option(help="jemalloc (built), system:jemalloc, tcmalloc, mimalloc, glibc, a .so.")]
    = "jemalloc",
    malloc_conf: Annotated[Optional[str], typer.Option(help="MALLOC_CONF for the program.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The run directory (new or empty).")] = None,
    interval: Annotated[str, typer.Option(help="Sampling interval.")] = "100ms",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the report at the end.")] = False,
) -> None:
    """Run an unmodified JVM program with the allocator, the C probe, the Java agent and NMT added, and report.

    The program's stdout, stderr and stdin pass through unchanged; `workbench exec` exits with the program's exit
    code (2 for bad input). `workbench snapshot PID --label L` takes a labelled snapshot while it runs;
    `kill -USR1 PID` makes the probe dump the allocator's full statistics into the run directory.
    """
    if not command:
        raise BadInput("exec: expected a command after --, e.g. workbench exec -- java -jar app.jar")
    java = shutil.which(command[0])
    if java is None:
        raise BadInput(f"exec: {command[0]}: command not found")
    if Path(command[0]).name != "java":
        raise BadInput(f"exec: {command[0]}: expected a java launcher (the probe and agent need a JVM)")
    interval_ms = parse_hold(interval) or 100
    choice = resolve_allocator(allocator)
    probe = ensure_probe()
    agent_jar = kernels_classpath()[0]
    sockets = _private_dir(native_probe.probe_dir())
    run_dir = new_run_dir(run_dir_name("exec", choice, malloc_conf), out).resolve()
    dumps = run_dir / "allocator"
    dumps.mkdir(exist_ok=True)
    # The agent holds premain (at most 30 s) until the start snapshot is taken, so `start` is before main runs.
    argv = [java, "-XX:NativeMemoryTracking=summary", f"-javaagent:{agent_jar}=dir={sockets}",
            "-Dworkbench.agent.hold=30000",
            f"-XX:ErrorFile={run_dir}/hs_err_pid%p.log", *command[1:]]
    env = dict(os.environ, WORKBENCH_PROBE_DIR=str(sockets), WORKBENCH_PROBE_DUMP_DIR=str(dumps))
    env.pop("MALLOC_CONF", None)
    env["LD_PRELOAD"] = ":".join([*([str(choice.library)] if choice.library else []), str(probe)])
    if malloc_conf:
        env["MALLOC_CONF"] = malloc_conf
    program = subprocess.Popen(argv, env=env)
    sampler = ExternalSampler(program.pid, run_dir, interval_s=interval_ms / 1000)
    received: list[str] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        try:
            program.send_signal(signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    sampling = threading.Thread(target=sampler.run, daemon=True)
    control = None
    try:
        # The start snapshot once the agent answers (the JVM is up), or after 30 s without it.
        deadline = time.monotonic() + 30
        while program.poll() is None and time.monotonic() < deadline:
            try:
                jvm_agent.query_agent(program.pid, "ping", timeout=0.5, directory=sockets)
                break
            except jvm_agent.AgentUnavailable:
                time.sleep(0.05)
        sampler.take("start")
        try:
            jvm_agent.query_agent(program.pid, "release", timeout=2.0, directory=sockets)
        except jvm_agent.AgentUnavailable:
            pass  # no agent: nothing is holding the program
        sampling.start()
        control = ControlServer(sampler, sockets)
        exit_code = program.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sampler.stop()
        if sampling.is_alive():
            sampling.join()
        if control is not None:
            control.close()
    report = _report(sampler, argv, exit_code, choice.name, str(choice.library) if choice.library else None,
                     malloc_conf, received[0] if received else None, run_dir, str(Path(java).resolve().parents[1]),
                     command)
    _finish(report, run_dir, quiet)
    if exit_code != 0:
        raise typer.Exit(exit_code if exit_code > 0 else 128 - exit_code)


@app.command()
def attach(
    pid: Annotated[int, typer.Argument(help="The JVM's process id.")],
    duration: Annotated[Optional[str], typer.Option(help="Stop after this long (default: until it exits or Ctrl-C).")]
    = None,
    out: Annotated[Optional[Path], typer.Option(help="The run directory (new or empty).")] = None,
    interval: Annotated[str, typer.Option(help="Sampling interval (NMT through jcmd every 10th sample).")] = "200ms",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the report at the end.")] = False,
) -> None:
    """Sample a JVM that is already running with whatever it has: the kernel's view always, the probe's and the
    agent's when they are loaded, else NMT through `jcmd PID VM.native_memory` (NMT must be on in that JVM)."""
    cmdline_path = Path(f"/proc/{pid}/cmdline")
    if not cmdline_path.exists():
        raise BadInput(f"attach: no process {pid}")
    argv = [a.decode(errors="replace") for a in cmdline_path.read_bytes().split(b"\0") if a]
    if "libjvm.so" not in Path(f"/proc/{pid}/maps").read_text(errors="replace"):
        raise BadInput(f"attach: process {pid} ({argv[0] if argv else '?'}) is not a JVM")
    java = argv[0] if argv else None
    has_agent = jvm_agent.agent_socket(pid).exists()
    sampler = ExternalSampler(pid, Path("."), interval_s=(parse_hold(interval) or 200) / 1000,
                              use_jcmd=not has_agent, jcmd=find_jcmd(java))
    if not has_agent and sampler.jcmd is None:
        raise BadInput("attach: no Java agent in that JVM and no jcmd found (install a JDK: apt-get install "
                       "openjdk-17-jdk-headless)")
    from workbench.protocol.provenance import Provenance
    from workbench.toolchain.allocators import AllocatorChoice

    run_dir = new_run_dir(run_dir_name(f"attach-{pid}", AllocatorChoice("detected", None, None, Provenance("none")),
                                       None), out).resolve()
    sampler.run_dir = run_dir
    stop_after = parse_hold(duration) if duration else None
    received: list[str] = []

    def stop(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        sampler.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sampler.take("start")
        if stop_after is not None:
            threading.Timer(stop_after / 1000, sampler.stop).start()
        sampler.run(full_every_s=2.0)
        alive = Path(f"/proc/{pid}").exists()
        if alive:
            sampler.take("end")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    report = _report(sampler, argv, None, "detected", None, None, received[0] if received else None, run_dir,
                     str(Path(java).resolve().parents[1]) if java and Path(java).exists() else "", argv)
    _finish(report, run_dir, quiet)
    if received:
        raise WorkbenchError(f"interrupted by {received[0]}; the report is in {run_dir}",
                             130 if received[0] == "SIGINT" else 143)


@app.command()
def snapshot(
    pid: Annotated[int, typer.Argument(help="The program's process id (as `workbench exec` runs it).")],
    label: Annotated[str, typer.Option(help="The snapshot's label.")] = "manual",
) -> None:
    """Take a labelled snapshot of a program that `workbench exec` is running."""
    try:
        answer = request_snapshot(pid, label)
    except (FileNotFoundError, ConnectionRefusedError):
        raise BadInput(f"snapshot: no `workbench exec` is running process {pid}") from None
    if "error" in answer:
        raise BadInput(f"snapshot: {answer['error']}")
    print(f"snapshot {answer['label']} taken at {answer['t_ms'] / 1000:.2f} s")
