"""``--profile``: async-profiler's agent into the measured JVM, and after the run its recording read into call sites
per snapshot (the Java reader), classified and attached to the report; the collapsed stacks go into the run
directory (``profile/collapsed/<label>.txt``)."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench._errors import BadInput, RunFailed
from workbench._files import write_atomically
from workbench.probes.callsites import ProfileSection
from workbench.protocol.callsites import (
    ARROW_BUFFERS_FILE, CALLSITES_FILE, COLLAPSED_DIR, DEFAULT_INTERVAL_BYTES, MARKS_FILE, NMT_MALLOC_OVERHEAD_BYTES,
    PROFILE_DIR, READER_CLASS, RECORDING_FILE, BadRecording, Recording, agent_arguments, agent_option, read_recording,
)
from workbench.protocol.events import Event, ProfileStopped, StepStarted
from workbench.report.arrow_buffers import join_buffers, read_ledgers, read_step_marks
from workbench.report.callsites import classify
from workbench.report.model import Report
from workbench.toolchain.profiler import ProfilerAgent, check_platform, ensure_agent

READER_TIMEOUT_S = 900
# --profile-buffers: Arrow keeps every allocator's ledgers, every ledger's buffers and the stacks that made them.
ARROW_DEBUG_OPTION = "-Darrow.memory.debug.allocator=true"
MAX_INTERVAL_BYTES = 1 << 30  # a mark's malloc (at least the interval) is a Java int


def profile_interval(option: str, value: int | None) -> int:
    """The sampling interval a profiled run uses: ``value`` bytes (0: every malloc), else the default."""
    if value is None:
        return DEFAULT_INTERVAL_BYTES
    if not 0 <= value <= MAX_INTERVAL_BYTES:
        raise BadInput(f"{option}: expected a size from 0 (every malloc) to 1GiB, got {value:,}")
    return value


def profile_interval_for(profile: bool, interval: int | None, option: str = "--profile-interval") -> int | None:
    """The interval of a run that asked for ``--profile`` (or gave ``--profile-interval``, which implies it); None
    when it records no call sites. BadInput, before anything starts, when this machine cannot profile."""
    if not profile and interval is None:
        return None
    check_platform()
    return profile_interval(option, interval)


@dataclass(frozen=True)
class Profiling:
    """A run that records call sites: async-profiler's agent, its interval, and the classpath of the reader."""

    agent: ProfilerAgent
    interval: int
    classpath: list[str]
    buffers: bool = False  # --profile-buffers: Arrow's debug allocator is on, the worker lists the open buffers

    @classmethod
    def start(cls, classpath: list[str], interval: int, buffers: bool = False) -> Profiling:
        """The agent for the kernels' classpath (extracted into the cache on first use)."""
        return cls(ensure_agent(classpath), interval, classpath, buffers)

    def option(self, recording: str = f"{PROFILE_DIR}/{RECORDING_FILE}") -> str:
        """The ``-agentpath`` that records into ``recording`` (relative: to the JVM's working directory)."""
        try:
            return agent_option(self.agent.library, self.interval, recording)
        except ValueError as error:
            raise BadInput(f"--profile: {error}") from None

    def section(self, run_dir: Path, error: str | None = None) -> ProfileSection:
        """How this run recorded, with ``error`` when it has no call sites."""
        profile = run_dir / PROFILE_DIR
        return ProfileSection(tool=f"async-profiler {self.agent.version}", interval_bytes=self.interval,
                              recording=str(profile / RECORDING_FILE), callsites=str(profile / CALLSITES_FILE),
                              error=error, arrow_debug=self.buffers)

    def load_into(self, jcmd: str, pid: int, run_dir: Path, action: str) -> None:
        """``jcmd PID JVMTI.agent_load <async-profiler> <action>,...`` (`attach`): loading it again with other options
        is how async-profiler's own launcher talks to it, so ``stop`` writes the recording and ends it. RunFailed
        when the JVM refuses."""
        recording = str(run_dir / PROFILE_DIR / RECORDING_FILE)
        self.option(recording)  # BadInput for a path async-profiler cannot take
        # Quoted: the diagnostic command would take "start,event=..." apart at its '=' as a named argument.
        arguments = f'"{agent_arguments(action, self.interval, recording)}"'
        result = subprocess.run([jcmd, str(pid), "JVMTI.agent_load", str(self.agent.library), arguments],
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        said = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or "return code: 0" not in said:
            raise RunFailed(f"attach --profile: jcmd could not {action} async-profiler in process {pid}: "
                            f"{' '.join(said.splitlines()[-2:]) or f'exit {result.returncode}'}")

    def finish(self, report: Report, events: Sequence[Event], run_dir: Path, java: Path, nmt: bool) -> Report:
        """The report with call sites at each snapshot, from the worker's recording; a recording that could not be
        stopped or read leaves the report as it was, with ``profile.error`` saying why."""
        stopped = next((e for e in events if isinstance(e, ProfileStopped)), None)
        if stopped is None:
            return dataclasses.replace(report, profile=self.section(
                run_dir, "the worker ended before it stopped the recording (a recording is only whole once stopped)"))
        if stopped.error is not None:
            return dataclasses.replace(report, profile=self.section(run_dir, f"async-profiler: {stopped.error}"))
        return self._attach(report, run_dir, java, nmt, {e.index: e.step for e in events if isinstance(e, StepStarted)})

    def finish_program(self, report: Report, run_dir: Path, java: Path, nmt: bool, epoch_ns: Callable[[float], int],
                       ) -> Report:
        """The same for a program `exec` ran (its agent wrote the recording when the JVM exited): the marks are its
        snapshots, each also the start of a "step" named after it, so a call site says after which snapshot it was
        allocated; ``epoch_ns`` turns a snapshot's ``t_ms`` into wall-clock nanoseconds."""
        if not (run_dir / PROFILE_DIR / RECORDING_FILE).is_file():
            return dataclasses.replace(report, profile=self.section(
                run_dir, "the program wrote no recording (async-profiler writes it when the JVM exits normally)"))
        lines = []
        for index, snapshot in enumerate(report.snapshots):
            lines += [f"step\t{index}\t{epoch_ns(snapshot.t_ms)}\t0", f"snapshot\t{snapshot.label}\t"
                      f"{epoch_ns(snapshot.t_ms)}\t0"]
        write_atomically(run_dir / PROFILE_DIR / MARKS_FILE, "".join(line + "\n" for line in lines))
        steps = {index: f"after '{s.label}'" for index, s in enumerate(report.snapshots)}
        return self._attach(report, run_dir, java, nmt, steps)

    def _attach(self, report: Report, run_dir: Path, java: Path, nmt: bool, steps: dict[int, str]) -> Report:
        try:
            recording = read_call_sites(java, self.classpath, run_dir, nmt, self.interval)
        except BadRecording as error:
            return dataclasses.replace(report, profile=self.section(run_dir, str(error)))
        info = recording.recording
        return attach(report, recording, run_dir, steps, dataclasses.replace(
            self.section(run_dir), mallocs=info.mallocs, frees=info.frees, nmt_header_bytes=info.nmt_header_bytes,
            marks=info.marks, marks_on_recording_clock=info.marks_on_recording_clock))


def wall_clock_of(started_monotonic_s: float) -> Callable[[float], int]:
    """A snapshot's ``t_ms`` (monotonic, since ``started_monotonic_s``) on the wall clock in nanoseconds, as the
    recording's events are: the marks of `exec` and `attach`, which cannot mark the recording itself."""
    offset_ns = time.time_ns() - time.monotonic_ns()
    return lambda t_ms: offset_ns + int((started_monotonic_s * 1000 + t_ms) * 1_000_000)


def read_call_sites(java: Path, classpath: list[str], run_dir: Path, nmt: bool, interval: int) -> Recording:
    """Run the Java reader over ``profile/native.jfr`` with the marks; BadRecording when it fails."""
    profile = run_dir / PROFILE_DIR
    out = profile / CALLSITES_FILE
    command = [str(java), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", ":".join(classpath), READER_CLASS,
               str(profile / RECORDING_FILE), str(profile / MARKS_FILE), str(out),
               str(NMT_MALLOC_OVERHEAD_BYTES if nmt else 0), str(interval)]
    if (profile / ARROW_BUFFERS_FILE).is_file():
        command.append(str(profile / ARROW_BUFFERS_FILE))
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=READER_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BadRecording(f"the call-site reader did not finish: {error}") from None
    if result.returncode != 0:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise BadRecording(f"the call-site reader failed (exit {result.returncode}): {tail}")
    return read_recording(out)


def collapsed_text(recording: Recording, index: int) -> str:
    """Every live stack of snapshot ``index`` in the collapsed form flame graph tools read: ``root;...;leaf bytes``."""
    return "".join(f"{';'.join(recording.stacks[site.stack].frames)} {site.bytes}\n"
                   for site in recording.snapshots[index].sites)


def attach(report: Report, recording: Recording, run_dir: Path, steps: dict[int, str],
           section: ProfileSection) -> Report:
    """The report with each snapshot's classified call sites and the leaks; the collapsed stacks written."""
    collapsed_dir = run_dir / PROFILE_DIR / COLLAPSED_DIR
    collapsed_dir.mkdir(parents=True, exist_ok=True)
    collapsed: dict[str, str] = {}
    for index, snapshot in enumerate(recording.snapshots):
        path = collapsed_dir / f"{snapshot.label}.txt"
        write_atomically(path, collapsed_text(recording, index))
        collapsed[snapshot.label] = str(path)
    by_label, leaks = classify(recording, report.snapshots, steps, arrow_leaked=bool(report.leaks),
                               collapsed=collapsed)
    if section.arrow_debug:
        by_label = join_buffers(by_label, recording, read_ledgers(run_dir / PROFILE_DIR / ARROW_BUFFERS_FILE),
                                read_step_marks(run_dir / PROFILE_DIR / MARKS_FILE), steps)
    snapshots = [dataclasses.replace(s, call_sites=by_label.get(s.label)) for s in report.snapshots]
    return dataclasses.replace(report, snapshots=snapshots, profile=dataclasses.replace(section, leaks=leaks))
