"""Run a scenario: resolve everything (bad input fails here), start the preloaded worker, collect its events."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workbench._errors import BadInput
from workbench._files import write_atomically
from workbench.report.expectations import check_expectations
from workbench.report.model import report_to_dict, report_to_json
from workbench.report.html import render_html
from workbench.report.timeline import write_timeline

from workbench.build.allocators import AllocatorChoice, resolve_allocator
from workbench.build.jvm import kernels_classpath
from workbench.jdk import Jdk, arrow_options, resolve_jdk
from workbench.report.build import build_report
from workbench.report.model import AllocatorSection, JvmSection, Report, RunError, ScenarioSection
from workbench.scenario import Scenario, load_scenario, resolve_scenario
from workbench.scenario.model import ALLOCATION_MANAGER_PROPERTY, HoldStep
from workbench.worker.spec import WorkerSpec

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for; None means: as the scenario file says."""

    scenario: str
    allocator: str | None = None
    malloc_conf: str | None = None
    java_home: str | None = None
    hold_ms: int | None = None


@dataclass(frozen=True)
class PreparedRun:
    scenario: Scenario
    source: Path
    allocator: AllocatorChoice
    malloc_conf: str | None
    jdk: Jdk
    jvm_options: list[str]


def prepare(request: RunRequest) -> PreparedRun:
    """Everything resolved and validated; raises BadInput (exit 2) before anything starts or is written."""
    source = resolve_scenario(request.scenario)
    scenario = load_scenario(source)
    if request.hold_ms is not None:
        steps = [HoldStep(hold=f"{request.hold_ms}ms") if isinstance(s, HoldStep) else s for s in scenario.steps]
        scenario = scenario.model_copy(update={"steps": steps})
    allocator = resolve_allocator(request.allocator or scenario.allocator)
    jdk = resolve_jdk(request.java_home)
    malloc_conf = request.malloc_conf if request.malloc_conf is not None else scenario.malloc_conf
    jvm_options = [
        "-XX:NativeMemoryTracking=summary",
        *arrow_options(jdk),
        f"-Darrow.allocation.manager.type={ALLOCATION_MANAGER_PROPERTY[scenario.allocation_manager]}",
        *scenario.jvm.options,
    ]
    return PreparedRun(scenario, source, allocator, malloc_conf, jdk, jvm_options)


def worker_environment(run: PreparedRun) -> dict[str, str]:
    """The worker's environment: the allocator preloaded, its configuration, pyarrow on the system allocator."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("MALLOC_CONF", None)
    if run.allocator.library is not None:
        env["LD_PRELOAD"] = str(run.allocator.library)
    if run.malloc_conf:
        env["MALLOC_CONF"] = run.malloc_conf
    env["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env


def _run_dir_name(run: PreparedRun) -> str:
    allocator = run.allocator.name if run.allocator.library is None or run.allocator.provenance.kind != "file" \
        else Path(run.allocator.name).name
    allocator = re.sub(r"[^A-Za-z0-9_.-]+", "-", allocator + (f"-{run.malloc_conf}" if run.malloc_conf else ""))
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{run.scenario.name}-{allocator}"[:200]


def create_run_dir(run: PreparedRun, out: Path | None) -> Path:
    """A new directory for this run: ``out`` (new or empty), else ``runs/<time>-<scenario>-<allocator>``."""
    if out is not None:
        if out.is_symlink():
            raise BadInput(f"--out {out}: is a symbolic link (expected a new or empty directory)")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise BadInput(f"--out {out}: exists and is not an empty directory")
        out.mkdir(parents=True, exist_ok=True)
        return out
    base = Path("runs")
    base.mkdir(exist_ok=True)
    name = _run_dir_name(run)
    for suffix in [""] + [f"-{n}" for n in range(2, 100)]:
        try:
            path = base / f"{name}{suffix}"
            path.mkdir()  # never follows a symlink planted at that name: mkdir fails on any existing entry
            return path
        except FileExistsError:
            continue
    raise BadInput(f"{base}: too many runs named {name} this second")


def execute(run: PreparedRun, run_dir: Path, quiet: bool = False,
            on_event: Callable[[dict[str, Any]], None] | None = None) -> Report:
    """Start the worker, stream its events, and build the report (also for a run that failed).

    Everything goes into ``run_dir`` as it happens: the worker's log, samples.jsonl, the raw statistics of each
    snapshot; then report.json and timeline.parquet.
    """
    classpath = kernels_classpath(quiet=quiet)
    run_dir = run_dir.resolve()
    spec_path = run_dir / "worker-spec.json"
    log_path = run_dir / "worker.log"
    WorkerSpec(
        scenario=run.scenario.model_dump(mode="json", by_alias=True),
        java_home=str(run.jdk.home),
        jvm_library=str(run.jdk.library),
        jvm_options=run.jvm_options,
        classpath=classpath,
        run_dir=str(run_dir),
    ).write(spec_path)
    read_end, write_end = os.pipe()
    events: list[dict[str, Any]] = []
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workbench.worker", str(spec_path), str(write_end)],
            env=worker_environment(run), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(write_end,), start_new_session=True,
        )
        os.close(write_end)
        try:
            with os.fdopen(read_end, encoding="utf-8") as stream:
                for line in stream:
                    event = json.loads(line)
                    events.append(event)
                    if on_event is not None:
                        on_event(event)
            exit_code = worker.wait()
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    failure = _orchestrator_finding(run, events, exit_code)
    report = build_report(
        events,
        ScenarioSection(run.scenario.name, run.scenario.description, str(run.source)),
        AllocatorSection(
            name=run.allocator.name,
            library=str(run.allocator.library) if run.allocator.library else None,
            version=None, malloc_conf=run.malloc_conf, backend=None, detected_library=None,
            config_prof=None, config_stats=None, provenance=run.allocator.provenance,
        ),
        JvmSection(
            java_home=str(run.jdk.home), version=None, vm=None, options=run.jvm_options,
            allocation_manager=run.scenario.allocation_manager, nmt=None, pyarrow_memory_pool=None,
        ),
        worker_exit_code=exit_code,
        worker_log=str(log_path),
        failure=failure,
        run_dir=str(run_dir),
    )
    if run.scenario.expect:
        report = dataclasses.replace(
            report, expectations=check_expectations(report_to_dict(report), list(run.scenario.expect))
        )
    write_timeline(run_dir / "samples.jsonl", run_dir / "timeline.parquet")
    write_atomically(run_dir / "report.json", report_to_json(report))
    write_atomically(run_dir / "report.html", render_html(report, run_dir))
    return report


def _orchestrator_finding(run: PreparedRun, events: list[dict[str, object]], exit_code: int) -> RunError | None:
    if exit_code < 0:
        return RunError(type="Signal", message=f"the worker was killed by {signal.Signals(-exit_code).name}")
    detected = next((e for e in events if e["event"] == "allocator"), None)
    expected = run.allocator.expected_backend
    if detected is not None and expected is not None and detected["backend"] != expected:
        return RunError(
            type="AllocatorMismatch",
            message=f"asked for {run.allocator.name}, but malloc in the worker is {detected['backend']}'s "
            f"({detected['library']}): the preload did not take effect",
        )
    return None
