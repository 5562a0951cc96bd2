"""Programs the workbench did not write: `exec` starts an unmodified `java` with the allocator, the C probe, the Java
agent and NMT added; `attach` watches a JVM that is already running. Both finish like a scenario run: one run
directory, the same report, the same checks."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from workbench._errors import BadInput
from workbench.probes._socket import private_dir, socket_dir
from workbench.protocol.lifetime import die_with_parent
from workbench.run.environment import (
    CheckedSettings, allocator_environment, allocator_preload, check_allocator_settings, preload_environment, preload_mismatch,
)
from workbench.run.run_dir import RunDir, at_lowest_priority, crash_line, prepare_report_writers, run_dir_name
from workbench.run.signals import on_stop_signals
from workbench.toolchain.allocators import AllocatorChoice, resolve_allocator
from workbench.toolchain.maven import kernels_classpath
from workbench.toolchain.probe import ensure_jvm_agent, ensure_probe
from workbench.toolchain.settings import AllocatorSpec, parse_spec

TYPE_CHECKING = False
if TYPE_CHECKING:  # pydantic and the report model: imported once the program is starting (import_reading)
    from workbench.run.external import ExternalSampler
    from workbench.report.model import Report, RunError
    from workbench.run.profile import Profiling

# The agent holds the program at VMInit (at most this long) until the start snapshot is taken, so `start` is
# before main runs.
AGENT_HOLD_MS = 30_000
# And the JVM's exit (at most this long) until the `exit` snapshot is taken, before NMT is torn down.
AGENT_EXIT_HOLD_MS = 10_000


@dataclass(frozen=True)
class PreparedProgram:
    """An `exec` with everything resolved: nothing has started and nothing is written yet."""

    command: list[str]  # as the user gave it
    java: str
    allocator: AllocatorChoice
    malloc_conf: str | None
    probe: Path
    agent_jar: str
    jvm_agent: Path  # the native agent that starts the Java agent in the program (see agent_options)
    sockets: Path
    interval_ms: int
    nmt: str = "summary"  # off, summary, detail
    spec: AllocatorSpec | None = None  # the allocator as named, with its settings
    settings: CheckedSettings = CheckedSettings(None)
    profiling: Profiling | None = None  # --profile: async-profiler's agent added too

    @property
    def allocator_label(self) -> str:
        """The allocator with its settings: ``glibc@arena_max:2``."""
        return self.settings.spec(self.spec.name if self.spec is not None else self.allocator.name)

@dataclass(frozen=True)
class ProgramResult:
    report: Report
    exit_code: int  # the program's own (negative: killed by that signal)


def prepare_program(command: list[str], allocator: str, malloc_conf: str | None, interval_ms: int,
                    quiet: bool = False, nmt: str = "summary", profile_interval: int | None = None) -> PreparedProgram:
    """Resolve the program, the allocator and the probe and agent (built on first use); BadInput before anything
    starts."""
    if not command:
        raise BadInput("exec: expected a command after --, e.g. workbench exec -- java -jar app.jar")
    java = shutil.which(command[0])
    if java is None:
        raise BadInput(f"exec: {command[0]}: command not found")
    if Path(command[0]).name != "java":
        raise BadInput(f"exec: {command[0]}: expected a java launcher (the probe and agent need a JVM)")
    spec = parse_spec(allocator)
    choice = resolve_allocator(spec.name, quiet=quiet)
    settings = check_allocator_settings(choice, spec, "--allocator", malloc_conf)
    probe = ensure_probe(quiet=quiet)
    classpath = kernels_classpath(quiet=quiet)
    profiling = None
    if profile_interval is not None:
        from workbench.run.profile import Profiling

        profiling = Profiling.start(classpath, profile_interval)
    return PreparedProgram(command, java, choice, settings.malloc_conf, probe, classpath[0],
                           ensure_jvm_agent(quiet=quiet), private_dir(socket_dir()), interval_ms, nmt, spec, settings,
                           profiling)


def claim_program_run_dir(program: PreparedProgram, out: Path | None) -> RunDir:
    return RunDir.claim(run_dir_name("exec", program.allocator, program.settings.label()), out)


def agent_options(program: PreparedProgram) -> list[str]:
    """The Java agent, started by the native agent: ``-javaagent`` would add java.instrument to the program's root
    modules, and a JVM whose module options differ from its CDS archive's builds its module graph at start-up (+30
    ms on JDK 17, +37 ms on JDK 25 here; native/probe/jvm_agent.c)."""
    return [f"-agentpath:{program.jvm_agent}=dir={program.sockets}", f"-Dworkbench.agent.jar={program.agent_jar}"]


def run_program(program: PreparedProgram, run_dir: RunDir, html: bool = True,
                leave_running: bool = False, text: bool = False) -> ProgramResult:
    """Run the program to its end with stdio passed through, sampling it; SIGINT/SIGTERM are forwarded to it.
    What the report needs (``text``: the text report too) is imported while the program runs."""
    dumps = run_dir.path / "allocator"
    dumps.mkdir(exist_ok=True)
    nmt = [f"-XX:NativeMemoryTracking={program.nmt}"] if program.nmt != "off" else []
    profiler: list[str] = []
    if program.profiling is not None:
        from workbench.protocol.callsites import PROFILE_DIR, RECORDING_FILE

        (run_dir.path / PROFILE_DIR).mkdir(exist_ok=True)
        profiler = [program.profiling.option(str(run_dir.path / PROFILE_DIR / RECORDING_FILE))]
    argv = [program.java, *nmt, *profiler, *agent_options(program),
            f"-Dworkbench.agent.hold={AGENT_HOLD_MS}", f"-Dworkbench.agent.exit-hold={AGENT_EXIT_HOLD_MS}",
            f"-XX:ErrorFile={run_dir.path}/hs_err_pid%p.log",
            *program.command[1:]]
    env = preload_environment([*allocator_preload(program.allocator), program.probe], program.malloc_conf,
                              extra={"WORKBENCH_PROBE_DIR": str(program.sockets),
                                     "WORKBENCH_PROBE_DUMP_DIR": str(dumps)},
                              allocator_variables=program.settings.variables)
    parent = os.getpid()
    # The program dies with `workbench exec` (even by SIGKILL) unless the user asked to leave it running.
    process = subprocess.Popen(argv, env=env, preexec_fn=None if leave_running else lambda: die_with_parent(parent))
    # The sampler, the probes' readers and the agent's client, imported only now: while the JVM starts (0.15-0.2 s
    # to its agent's VMInit) rather than before it (about 30 ms of `exec`'s start, in front of the program's).
    from workbench.probes import jvm_agent, native_probe
    from workbench.run.external import ControlServer, ExternalSampler, external_report

    # The program's mappings are read by the probe's snapshot reader, loaded here as a library (as the worker does).
    # Until the background thread started at the release has imported what reading needs, snapshots and samples are
    # read and kept as they came (see ExternalSampler.ready).
    sampler = ExternalSampler(process.pid, run_dir.path, interval_s=program.interval_ms / 1000,
                              reader=native_probe.SnapshotLibrary(program.probe), ready=threading.Event())
    received: list[str] = []

    def forward(signal_name: str) -> None:
        received.append(signal_name)
        try:
            process.send_signal(signal.Signals[signal_name])
        except ProcessLookupError:
            pass

    sampling = threading.Thread(target=sampler.run, daemon=True)
    control = None
    at_exit: threading.Thread | None = None
    with on_stop_signals(forward):
        try:
            _wait_for_agent(process, program.sockets)
            start = sampler.capture("start")
            try:
                # Asked before the release, so the agent holds even an exit that follows at once (java -version).
                waiting = jvm_agent.await_exit(process.pid, program.sockets)
            except jvm_agent.AgentUnavailable:
                waiting = None
            try:
                jvm_agent.query_agent(process.pid, "release", timeout=2.0, directory=program.sockets)
            except jvm_agent.AgentUnavailable:
                pass  # no agent: nothing is holding the program
            # Not before: while the program is held, nothing else competes with the start snapshot.
            threading.Thread(target=_prepare_in_background, args=(sampler, html, text),
                             name="workbench-prepare-report", daemon=True).start()
            if start is not None:
                sampler.keep(start)
            if waiting is not None:
                at_exit = threading.Thread(target=_exit_snapshot, args=(sampler, program.sockets, waiting),
                                           daemon=True)
                at_exit.start()
            sampling.start()
            control = ControlServer(sampler, program.sockets)
            exit_code = process.wait()
        finally:
            sampler.stop()
            if sampling.is_alive():
                sampling.join()
            if at_exit is not None:
                at_exit.join(timeout=AGENT_EXIT_HOLD_MS / 1000)
            if control is not None:
                control.close()
            sampler.close()
    detected = sampler.allocator_info or {}
    error = _crash(exit_code, run_dir, received) or preload_mismatch(program.allocator, detected.get("backend"),
                                                                     detected.get("library"))
    report = external_report(sampler, argv, program.command, exit_code, program.allocator, program.malloc_conf,
                             str(Path(program.java).resolve().parents[1]), run_dir,
                             interrupted_by=received[0] if received else None, error=error)
    report = dataclasses.replace(report, allocator=dataclasses.replace(
        report.allocator, spec=program.allocator_label, settings=program.settings.readback,
        environment=allocator_environment(program.allocator, program.settings)))
    if program.profiling is not None:
        # Imported only now (0.18 s: it was imported on the way to the start snapshot, which the program waits for);
        # the wall clock's offset from the monotonic clock is the same now as at the start.
        from workbench.run.profile import wall_clock_of

        report = program.profiling.finish_program(report, run_dir.path, Path(program.java), program.nmt != "off",
                                                  wall_clock_of(sampler.started))
    run_dir.finish(report, html)
    return ProgramResult(report, exit_code)


def _prepare_in_background(sampler: ExternalSampler, html: bool, text: bool) -> None:
    """What reading the program's layers (then ``sampler.ready``) and writing its report need, imported at the lowest
    CPU priority (this thread's nice 19: Linux gives each thread its own), so that on a busy machine the program runs
    first and the imports take its idle time. Measured on 2 cores around a 1.7 s Java program (8 runs each, medians):
    with the imports (0.37 s of CPU) and the report's writers (0.3-0.4 s) at normal priority, from the program's
    release to its exit 1.63 s; at nice 19, 1.44 s."""
    from workbench.run.external import import_reading

    at_lowest_priority()
    try:
        import_reading()
    finally:
        sampler.ready.set()
    prepare_report_writers(html, text)


def _exit_snapshot(sampler: ExternalSampler, sockets: Path, waiting: socket.socket) -> None:
    """The `exit` snapshot: the agent says when the JVM starts to exit and holds the exit until it is taken, so every
    layer (NMT included) is still there to read."""
    from workbench.probes import jvm_agent

    try:
        reply = jvm_agent.exit_reply(waiting)
    except (jvm_agent.AgentUnavailable, ValueError):
        return  # no agent, or the program died without exiting (a signal): "last" stands in

    def release() -> None:
        try:
            jvm_agent.query_agent(sampler.pid, "release-exit", timeout=2.0, directory=sockets)
        except jvm_agent.AgentUnavailable:
            pass

    if reply.get("exiting"):
        # Released once read (take calls release even when reading fails): the snapshot's completion (its replies
        # validated, its raw text written: 2-38 ms here) overlaps the JVM's exit instead of holding it.
        sampler.take("exit", read=release)
    else:
        release()


def _crash(exit_code: int, run_dir: RunDir, forwarded: list[str]) -> RunError | None:
    """A program killed by a signal that nobody forwarded to it crashed: the run did not end as the program meant."""
    from workbench.report.model import RunError

    if exit_code >= 0:
        return None
    name = signal.Signals(-exit_code).name
    if name in forwarded:
        return None  # the user stopped it (Ctrl-C, SIGTERM): reported as an interrupt
    hs_err = run_dir.hs_err()
    if hs_err is not None:
        return RunError(type="JvmCrash", message=f"{crash_line(hs_err)} (see {hs_err})")
    hint = " (from outside, or the kernel's OOM killer: see dmesg)" if name == "SIGKILL" else ""
    return RunError(type="Signal", message=f"the program was killed by {name}{hint}")


def _wait_for_agent(process: subprocess.Popen[bytes], sockets: Path, timeout_s: float = 30) -> None:
    """Until the agent answers (the JVM is up), the program ends, or ``timeout_s`` passes. Asked every 10 ms: the
    program is held at VMInit from its first answer on, and a ping at a socket not there yet costs microseconds."""
    from workbench.probes import jvm_agent

    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        try:
            jvm_agent.query_agent(process.pid, "ping", timeout=0.5, directory=sockets)
            return
        except jvm_agent.AgentUnavailable:
            time.sleep(0.01)


@dataclass(frozen=True)
class AttachResult:
    report: Report
    interrupted_by: str | None


def attach_process(pid: int, duration_ms: int | None, interval_ms: int, out: Path | None,
                   html: bool = True, profile_interval: int | None = None) -> AttachResult:
    """Sample a running JVM with what it has: the kernel's view always, the probe's and the agent's when loaded,
    else NMT through `jcmd PID VM.native_memory`. With ``profile_interval``, async-profiler is loaded into it
    (``jcmd PID JVMTI.agent_load``) to record call sites from the start snapshot on, and stopped at the end."""
    from workbench.probes import jvm_agent
    from workbench.protocol.callsites import PROFILE_DIR
    from workbench.run.external import ExternalSampler, external_report, find_jcmd
    from workbench.run.profile import Profiling, wall_clock_of

    cmdline_path = Path(f"/proc/{pid}/cmdline")
    if not cmdline_path.exists():
        raise BadInput(f"attach: no process {pid}")
    argv = [a.decode(errors="replace") for a in cmdline_path.read_bytes().split(b"\0") if a]
    if "libjvm.so" not in Path(f"/proc/{pid}/maps").read_text(errors="replace"):
        raise BadInput(f"attach: process {pid} ({argv[0] if argv else '?'}) is not a JVM")
    java = argv[0] if argv else None
    has_agent = jvm_agent.agent_socket(pid).exists()
    jcmd = find_jcmd(java)
    if not has_agent and jcmd is None:
        raise BadInput("attach: no Java agent in that JVM and no jcmd found (install a JDK: apt-get install "
                       "openjdk-17-jdk-headless)")
    profiling = None
    if profile_interval is not None:
        if jcmd is None:
            raise BadInput("attach --profile: no jcmd found to load async-profiler into that JVM (install a JDK: "
                           "apt-get install openjdk-17-jdk-headless)")
        profiling = Profiling.start(kernels_classpath(), profile_interval)
    run_dir = RunDir.claim(run_dir_name(f"attach-{pid}", None, None), out)
    sampler = ExternalSampler(pid, run_dir.path, interval_s=interval_ms / 1000, use_jcmd=not has_agent, jcmd=jcmd)
    wall_clock = wall_clock_of(sampler.started)
    if profiling is not None:
        assert jcmd is not None
        (run_dir.path / PROFILE_DIR).mkdir(exist_ok=True)
        profiling.load_into(jcmd, pid, run_dir.path, "start")
    received: list[str] = []

    def stop(signal_name: str) -> None:
        received.append(signal_name)
        sampler.stop()

    with on_stop_signals(stop):
        sampler.take("start")
        timer = threading.Timer(duration_ms / 1000, sampler.stop) if duration_ms is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        sampler.run(full_every_s=2.0)
        if timer is not None:
            timer.cancel()
        if Path(f"/proc/{pid}").exists():
            sampler.take("end")
            if profiling is not None:
                assert jcmd is not None
                profiling.load_into(jcmd, pid, run_dir.path, "stop")
    java_home = str(Path(java).resolve().parents[1]) if java and Path(java).exists() else ""
    interrupted = received[0] if received else None
    report = external_report(sampler, argv, argv, None, None, None, java_home, run_dir, interrupted_by=interrupted)
    if profiling is not None:
        reader = Path(java_home) / "bin" / "java" if java_home else Path(shutil.which("java") or "java")
        report = profiling.finish_program(report, run_dir.path, reader, nmt=any(s.nmt for s in report.snapshots),
                                          epoch_ns=wall_clock)
    run_dir.finish(report, html)
    return AttachResult(report, interrupted)

