"""Run a scenario: resolve everything (bad input fails here), start the preloaded worker, collect its events."""

from __future__ import annotations

import dataclasses
import getpass
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.protocol import layout
from workbench.protocol.spec import WorkerSpec
from workbench.run.environment import (
    CheckedSettings, allocator_environment, allocator_preload, check_allocator_settings, malloc_conf_finding, preload_environment,
    preload_mismatch,
)
from workbench.run.jdk import DIAGNOSTIC_COMMAND_OPTIONS, Jdk, arrow_options, resolve_jdk
from workbench.run.run_dir import RunDir, crash_line, prepare_report_writers, run_dir_name
from workbench.run.signals import on_stop_signals
from workbench._errors import BadInput
from workbench._files import open_output
from workbench.scenario import Scenario, load_scenario, resolve_scenario
from workbench.scenario.loader import is_bundled
from workbench.scenario.trust import untrusted_values
from workbench.scenario.model import ALLOCATION_MANAGER_PROPERTY, HoldStep
from workbench.toolchain.allocators import AllocatorChoice, resolve_allocator
from workbench.toolchain.settings import AllocatorSpec, parse_spec
from workbench.toolchain.maven import kernels_classpath
from workbench.toolchain.probe import ensure_probe

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported once the worker is starting (import_report_building), not before
    from workbench.protocol.events import Event
    from workbench.report.model import Report, RunError
    from workbench.run.profile import Profiling


def import_report_building() -> None:
    """Import what reading the worker's events and building the report need (the events' and the report's pydantic
    models): called once the worker is starting, so that they are imported while it starts, not before."""
    import workbench.protocol.events  # noqa: F401
    import workbench.report.build  # noqa: F401
    import workbench.run.expectations  # noqa: F401


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for; None means: as the scenario file says."""

    scenario: str
    allocator: str | None = None  # NAME or NAME@key:value,... (toolchain.settings)
    malloc_conf: str | None = None
    java_home: str | None = None
    hold_ms: int | None = None
    trust: bool = False  # --trust: the file may run programs, load native code, write files (see scenario.trust)
    nmt: str | None = None  # --nmt: off, summary, detail
    jpype_gc_link: bool | None = None  # --jpype-gc-link
    profile: bool = False  # --profile: native call sites (also the scenario's `profile: native`)
    profile_interval: int | None = None  # --profile-interval, bytes (implies --profile)
    profile_buffers: bool = False  # --profile-buffers: also Arrow's debug allocator (implies --profile)


@dataclass(frozen=True)
class PreparedRun:
    scenario: Scenario
    source: Path
    allocator: AllocatorChoice
    malloc_conf: str | None
    jdk: Jdk
    jvm_options: list[str]
    malloc_conf_option: str = "--malloc-conf"  # where malloc_conf came from, for messages
    spec: AllocatorSpec | None = None  # the allocator as named, with its settings
    settings: CheckedSettings = CheckedSettings(None)  # the allocator's settings, checked and read back
    profile_interval: int | None = None  # bytes, when the run records native call sites
    profile_buffers: bool = False  # Arrow's debug allocator is on: each snapshot lists the open buffers

    @property
    def allocator_label(self) -> str:
        """The allocator with its settings as one would name it again: ``glibc@arena_max:2``."""
        return self.settings.spec(self.spec.name if self.spec is not None else self.allocator.name)

def prepare(request: RunRequest) -> PreparedRun:
    """Everything resolved and validated; raises BadInput (exit 2) before anything starts or is written."""
    source = resolve_scenario(request.scenario)
    scenario = load_scenario(source)
    if not request.trust and not is_bundled(source):
        untrusted = untrusted_values(scenario, allocator_from_cli=request.allocator is not None,
                                     malloc_conf_from_cli=request.malloc_conf is not None)
        if untrusted:
            raise BadInput(untrusted[0].message(str(source)))
    if request.hold_ms is not None:
        steps = [HoldStep.model_validate({"hold": f"{request.hold_ms}ms"}) if isinstance(s, HoldStep) else s for s in scenario.steps]
        scenario = scenario.model_copy(update={"steps": steps})
    jvm_updates = {key: value for key, value in (("nmt", request.nmt), ("jpype_gc_link", request.jpype_gc_link))
                   if value is not None}
    if jvm_updates:
        scenario = scenario.model_copy(update={"jvm": scenario.jvm.model_copy(update=jvm_updates)})
    # The cheap checks first: a bad option is refused before the allocator is resolved (which may build it).
    buffers = request.profile_buffers or scenario.profile == "buffers"
    profiled = request.profile or buffers or scenario.profile == "native"
    interval = None
    if profiled or request.profile_interval is not None:
        from workbench.run.profile import profile_interval_for

        interval = profile_interval_for(profiled, request.profile_interval)
    option = "--allocator" if request.allocator else f"{source}: allocator"
    spec = parse_spec(request.allocator or scenario.allocator, option)
    allocator = resolve_allocator(spec.name, option=option)
    jdk = resolve_jdk(request.java_home)
    malloc_conf = request.malloc_conf if request.malloc_conf is not None else scenario.malloc_conf
    malloc_conf_option = "--malloc-conf" if request.malloc_conf is not None else f"{source}: malloc_conf"
    settings = check_allocator_settings(allocator, spec, option, malloc_conf, malloc_conf_option)
    if spec.settings and settings.family == "jemalloc":  # the worker's read-back names where the conf came from
        malloc_conf_option = option
    jvm_options = [
        *([f"-XX:NativeMemoryTracking={scenario.jvm.nmt}"] if scenario.jvm.nmt != "off" else []),
        *arrow_options(jdk),
        *DIAGNOSTIC_COMMAND_OPTIONS,
        f"-Darrow.allocation.manager.type={ALLOCATION_MANAGER_PROPERTY[scenario.allocation_manager]}",
        # A native crash's report goes into the run directory (the worker runs there).
        "-XX:ErrorFile=hs_err_pid%p.log",
        # The Java heap's and the class space's ranges, for the ledger's attribution by address (probes/regions.py).
        layout.REGIONS_LOG_OPTION,
        *scenario.jvm.options,
    ]
    if buffers:
        from workbench.run.profile import ARROW_DEBUG_OPTION

        jvm_options.append(ARROW_DEBUG_OPTION)
    return PreparedRun(scenario, source, allocator, settings.malloc_conf, jdk, jvm_options, malloc_conf_option, spec,
                       settings, profile_interval=interval, profile_buffers=buffers)


def claim_run_dir(run: PreparedRun, out: Path | None) -> RunDir:
    """A new directory for this run: ``out`` (new or empty), else ``runs/<time>-<scenario>-<allocator>``."""
    return RunDir.claim(run_dir_name(run.scenario.name, run.allocator, run.settings.label()), out)


def execute(run: PreparedRun, run_dir: RunDir, quiet: bool = False,
            on_event: Callable[[Event], None] | None = None, html: bool = True) -> Report:
    """Start the worker, stream its events, and build the report (also for a run that failed).

    Everything goes into ``run_dir`` as it happens: the worker's log, samples.jsonl, the raw statistics of each
    snapshot; then report.json, timeline.parquet and (with ``html``) report.html.
    """
    classpath = kernels_classpath(quiet=quiet)
    profiling: Profiling | None = None
    if run.profile_interval is not None:
        from workbench.run.profile import Profiling

        profiling = Profiling.start(classpath, run.profile_interval, run.profile_buffers)
    jvm_options = [*run.jvm_options, *([profiling.option()] if profiling else [])]
    if profiling is not None:
        from workbench.protocol.callsites import PROFILE_DIR

        # Where the agent (started with the JVM, before the worker's session exists) writes its recording and log.
        (run_dir.path / PROFILE_DIR).mkdir(exist_ok=True)
    WorkerSpec(
        scenario=run.scenario.model_dump(mode="json", by_alias=True),
        java_home=str(run.jdk.home),
        jvm_library=str(run.jdk.library),
        jvm_options=jvm_options,
        classpath=classpath,
        run_dir=str(run_dir.path),
        parent_pid=os.getpid(),
        probe_library=_snapshot_library(quiet),
        profile_library=str(profiling.agent.library) if profiling else None,
        profile_interval=run.profile_interval,
        profile_buffers=run.profile_buffers,
    ).write(run_dir.spec)
    read_end, write_end = os.pipe()
    events: list[Event] = []
    environment = preload_environment(allocator_preload(run.allocator), run.malloc_conf,
                                      extra={"ARROW_DEFAULT_MEMORY_POOL": "system", **_path_locale(run_dir.path)},
                                      python=True, allocator_variables=run.settings.variables)
    with os.fdopen(open_output(run_dir.worker_log), "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workbench.worker", str(run_dir.spec), str(write_end)],
            env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(write_end,), start_new_session=True, cwd=run_dir.path,
        )
        os.close(write_end)
        import_report_building()
        from workbench.protocol.events import BadEvent, decode
        # What the report needs once the worker is done (pyarrow for the timeline, the HTML renderer) is made ready
        # while it runs (this process only waits for its events meanwhile), at the lowest priority: the worker first.
        threading.Thread(target=prepare_report_writers, args=(html, True, True), name="workbench-prepare-report",
                         daemon=True).start()
        stopper = _WorkerStopper(worker)
        watchdog = _Watchdog(run.scenario.timeout / 1000, stopper)
        watchdog.start()
        try:
            with on_stop_signals(stopper.stop), os.fdopen(read_end, encoding="utf-8") as stream:
                for line in stream:
                    try:
                        event = decode(line)
                    except BadEvent:
                        continue  # a line cut short by a worker killed mid-write
                    events.append(event)
                    if on_event is not None:
                        on_event(event)
            exit_code = worker.wait()
        finally:
            watchdog.cancel()
            stopper.stop("exit")  # nothing the run started may outlive it
            _remove_perf_data(worker.pid)
    from workbench.protocol.events import StepStarted
    from workbench.report.build import build_report
    from workbench.report.model import AllocatorSection, JvmSection, RunError, ScenarioSection, report_to_dict
    from workbench.run.expectations import check_expectations

    failure = watchdog.finding() or stopper.finding(run) or _worker_finding(run, events, exit_code, run_dir)
    hs_err = run_dir.hs_err()
    if hs_err is not None and failure is not None and failure.type in ("Signal", "WorkerDied"):
        failure = RunError(type="JvmCrash", message=f"{crash_line(hs_err)} ({failure.message}; see {hs_err})")
    last_step = next((e for e in reversed(events) if isinstance(e, StepStarted)), None)
    if failure is not None and failure.step is None and last_step is not None:
        failure = dataclasses.replace(failure, step=last_step.index, kind=last_step.step)
    report = build_report(
        events,
        ScenarioSection(run.scenario.name, run.scenario.description, str(run.source)),
        AllocatorSection(
            name=run.allocator.name,
            library=str(run.allocator.library) if run.allocator.library else None,
            version=None, malloc_conf=run.malloc_conf, backend=None, detected_library=None,
            config_prof=None, config_stats=None, provenance=run.allocator.provenance,
            settings=run.settings.readback, spec=run.allocator_label,
            environment=allocator_environment(run.allocator, run.settings),
        ),
        JvmSection(
            java_home=str(run.jdk.home), version=None, vm=None, options=jvm_options,
            allocation_manager=run.scenario.allocation_manager, nmt=None, pyarrow_memory_pool=None,
        ),
        worker_exit_code=exit_code,
        worker_log=str(run_dir.worker_log),
        failure=failure,
        run_dir=str(run_dir.path),
        hs_err=str(hs_err) if hs_err else None,
        interrupted_by=stopper.signal_name,
    )
    if profiling is not None:
        report = profiling.finish(report, events, run_dir.path, run.jdk.home / "bin" / "java",
                                  nmt=run.scenario.jvm.nmt != "off")
    if run.scenario.expect:
        report = dataclasses.replace(
            report, expectations=check_expectations(report_to_dict(report), list(run.scenario.expect))
        )
    run_dir.finish(report, html)
    return report


def _snapshot_library(quiet: bool) -> str | None:
    """The probe library the worker reads its snapshots with (built on first use); None without gcc or make,
    and the worker reads them in Python, slower and with garbage of its own."""
    try:
        return str(ensure_probe(quiet=quiet))
    except BadInput as missing:
        print(f"workbench: {missing}; snapshots are read in Python instead", file=sys.stderr)
        return None


def _path_locale(path: Path) -> dict[str, str]:
    """A UTF-8 locale for the worker when its run directory is not ASCII and the locale the worker would get cannot
    encode it: the JVM takes file names in the locale's encoding (sun.jnu.encoding) and cannot open the directory
    otherwise. (This process's own encoding says nothing: Python coerces the C locale to UTF-8 for itself.)"""
    if str(path).isascii():
        return {}
    effective = os.environ.get("LC_ALL") or os.environ.get("LC_CTYPE") or os.environ.get("LANG") or "C"
    if "utf-8" in effective.lower() or "utf8" in effective.lower():
        return {}
    return {"LC_ALL": "C.UTF-8"}


def execute_repeated(run: PreparedRun, run_dir: RunDir, count: int, quiet: bool = False,
                     on_run: Callable[[int], Callable[[Event], None] | None] | None = None,
                     html: bool = True) -> Report:
    """``count`` runs, each in a fresh worker and its own ``repeat-K`` directory inside ``run_dir``; ``run_dir``
    gets the report of the median run carrying every run's figures (report.repeats). Stops at an interrupt."""
    from workbench._files import write_atomically
    from workbench.report.model import report_to_json
    from workbench.report.repeats import with_repeats

    reports: list[Report] = []
    dirs: list[str] = []
    for index in range(count):
        sub = RunDir.claim(run_dir_name(run.scenario.name, run.allocator, run.settings.label()),
                           run_dir.path / f"repeat-{index + 1}")
        reports.append(execute(run, sub, quiet=quiet, on_event=on_run(index) if on_run else None, html=html))
        dirs.append(str(sub.path))
        if reports[-1].interrupted_by is not None:
            break
    report = dataclasses.replace(with_repeats(reports, dirs), run_dir=str(run_dir.path))
    write_atomically(run_dir.path / "report.json", report_to_json(report))
    if html:
        from workbench.report.html import render_html

        shown = Path(dirs[report.repeats.shown]) if report.repeats else run_dir.path
        write_atomically(run_dir.path / "report.html", render_html(report, shown))
    return report


class _Watchdog(threading.Thread):
    """Stops the worker when the scenario's timeout has passed. If this thread dies, the run was not guarded: the
    exception is kept and fails the run."""

    def __init__(self, timeout_s: float, stopper: _WorkerStopper) -> None:
        super().__init__(name="workbench-watchdog", daemon=True)
        self._timeout_s = timeout_s
        self._stopper = stopper
        self._cancelled = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            if not self._cancelled.wait(self._timeout_s):
                self._stopper.stop("timeout")
        except BaseException as exc:
            self.failure = exc

    def cancel(self) -> None:
        self._cancelled.set()

    def finding(self) -> RunError | None:
        if self.failure is None:
            return None
        from workbench.report.model import RunError

        return RunError(type="WatchdogDied", message=f"the watchdog thread died: {type(self.failure).__name__}: "
                                                     f"{self.failure} (the run was not guarded by its timeout)")


class _WorkerStopper:
    """Stops the worker's whole process group: TERM, then KILL after a grace period. Records why."""

    GRACE_S = 5.0

    def __init__(self, worker: subprocess.Popen[bytes]) -> None:
        self._worker = worker
        self._lock = threading.Lock()
        self.reason: str | None = None  # "timeout", "SIGINT", "SIGTERM"

    @property
    def signal_name(self) -> str | None:
        return self.reason if self.reason in ("SIGINT", "SIGTERM") else None

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.reason is None and reason != "exit" and self._worker.poll() is None:
                self.reason = reason
        threading.Thread(target=self._terminate, daemon=True).start() if reason != "exit" else self._terminate()

    def _terminate(self) -> None:
        for sig, wait_s in ((signal.SIGTERM, self.GRACE_S), (signal.SIGKILL, None)):
            try:
                os.killpg(self._worker.pid, sig)
            except ProcessLookupError:
                return
            try:
                self._worker.wait(timeout=wait_s)
                # The worker is gone; still kill its group, in case it left children behind.
            except subprocess.TimeoutExpired:
                continue

    def finding(self, run: PreparedRun) -> RunError | None:
        from workbench.report.model import RunError

        if self.reason == "timeout":
            return RunError(type="Timeout", message=f"the scenario ran longer than its timeout of "
                                                    f"{run.scenario.timeout / 1000:g} s; the worker was stopped")
        if self.reason in ("SIGINT", "SIGTERM"):
            return RunError(type="Interrupted", message=f"workbench received {self.reason}; the worker was stopped")
        return None


def _remove_perf_data(pid: int) -> None:
    """HotSpot's hsperfdata file of the worker: the JVM removes it at a normal exit, which the worker skips."""
    try:
        # HotSpot on Linux always uses /tmp here, whatever TMPDIR says.
        (Path("/tmp") / f"hsperfdata_{getpass.getuser()}" / str(pid)).unlink()
    except (FileNotFoundError, PermissionError, KeyError, OSError):
        pass


def _worker_finding(run: PreparedRun, events: list[Event], exit_code: int, run_dir: RunDir) -> RunError | None:
    from workbench.protocol.events import AllocatorDetected, StepFailed
    from workbench.report.model import RunError

    if exit_code < 0:
        name = signal.Signals(-exit_code).name
        hint = " (from outside, or the kernel's OOM killer: see dmesg)" if name == "SIGKILL" else ""
        return RunError(type="Signal", message=f"the worker was killed by {name}{hint}")
    if exit_code not in (0, 3) and not any(isinstance(e, StepFailed) for e in events):
        return RunError(type="WorkerDied", message=f"the worker exited with code {exit_code} (a JVM crash "
                                                   "writes hs_err_pid*.log into the run directory)")
    detected = next((e for e in events if isinstance(e, AllocatorDetected)), None)
    if detected is None:
        return None
    mismatch = preload_mismatch(run.allocator, detected.backend, detected.library)
    if mismatch is not None or not run.malloc_conf:
        return mismatch
    log = run_dir.worker_log.read_text(encoding="utf-8", errors="replace") if run_dir.worker_log.is_file() else ""
    settings = [dataclasses.asdict(s) for s in detected.settings or []]
    return malloc_conf_finding(settings, log, run.malloc_conf_option)
