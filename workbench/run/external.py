"""Measuring a JVM the workbench did not start itself: `exec` (it starts the program, unmodified) and `attach`.

The layers come from outside the program: the kernel (/proc/<pid>), the allocator (the preloaded C probe's socket),
the JVM (the Java agent's socket, or `jcmd` when there is no agent). Arrow's layer is null: nothing in the program
reports it. Snapshots are taken at the start, whenever `workbench snapshot PID` asks, and at the end (the last full
snapshot before the program exited).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench._files import WriteFailed, appending
from workbench.probes import jvm_agent, native_probe
from workbench.probes._socket import ask, reclaim_stale
from workbench.probes.nmt import NmtSummary, parse_summary
from workbench.probes.process import ProcessSnapshot, read_process, summarize
from workbench.probes.process_status import read_status
from workbench.protocol import layout
from workbench.probes.allocator import AllocatorSnapshot
from workbench.protocol.provenance import Provenance
from workbench.protocol.samples import make_sample
from workbench.run.run_dir import RunDir
from workbench.toolchain.allocators import AllocatorChoice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from workbench.report.model import Report, RunError

CONTROL_PREFIX = "exec-"


def import_reading() -> None:
    """Import what reading the program's layers and writing its report need (pydantic, the report model, the
    snapshots' adapter, 20 ms to build): `exec` calls it once its program is starting, so that this work overlaps
    the program instead of following its exit."""
    import workbench.protocol.replies  # noqa: F401
    import workbench.report.build  # noqa: F401
    import workbench.values  # noqa: F401
    from workbench.report.model import snapshot_adapter

    snapshot_adapter()


@dataclass(frozen=True)
class Captured:
    """A full snapshot as read (ExternalSampler.capture), before its replies are validated and its text written."""

    label: str
    t_ms: float
    cost_ms: float
    process: ProcessSnapshot
    smaps: str
    agent: dict[str, Any] | None
    probe: dict[str, Any] | None
    jcmd_nmt: NmtSummary | None = None  # attach without an agent: NMT as jcmd printed it


@dataclass(frozen=True)
class RawSample:
    """A timeline sample as read (ExternalSampler._ask_sample), before its replies are validated."""

    t_ms: float
    status: dict[str, int]
    probe: dict[str, Any] | None
    agent: dict[str, Any] | None
    jcmd_nmt: NmtSummary | None
    with_nmt: bool  # one sample in nmt_every reads NMT
    read_s: float  # what reading it took


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@dataclass
class ExternalSampler:
    """Samples one process; its snapshots and samples go to ``run_dir`` as they are taken."""

    pid: int
    run_dir: Path
    interval_s: float = 0.1
    nmt_every: int = 10
    use_jcmd: bool = False  # attach without an agent: NMT through jcmd, at a lower rate
    # The C probe's snapshot reader (exec): maps + PAGEMAP_SCAN parsed in C; None: smaps read and parsed in Python.
    reader: native_probe.SnapshotLibrary | None = None
    jcmd: str | None = None
    started: float = field(default_factory=time.monotonic)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, Any] | None = None  # the most recent full snapshot, labelled "last" at the end
    allocator_info: dict[str, Any] | None = None
    jvm_info: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)  # layer -> where its figures came from
    write_failure: WriteFailed | None = None  # the run directory refused a file: sampling stopped, the run fails
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _raw_fd: int | None = None  # where the reader writes a snapshot's raw text (a memfd), read back for its file
    # Set once what reading the replies needs (pydantic's models) is imported: `exec` imports it in the background
    # after the program's release, and until then snapshots and samples are read and kept as they came, completed
    # (validated, written) in order once it is set or at the end (finish). Set from the start unless given.
    ready: threading.Event = field(default_factory=lambda: _set(threading.Event()))
    _pending: list[Captured] = field(default_factory=list)  # taken, not completed yet: the next in `snapshots`
    _latest_captured: Captured | None = None  # the latest periodic one, completed into `latest` by finish()

    def t_ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 3)

    # The layers, each None when its source does not answer (the program exited, no probe, no agent). Each is asked
    # (_ask_*: its raw reply, nothing imported) and then read (_allocator_of, _jvm_of: validated by pydantic's
    # models), so that the start snapshot, which the program is held for, asks only and is read after the release.
    def _ask_probe(self) -> dict[str, Any] | None:
        try:
            return native_probe.query(self.pid, "stats", timeout=1.0)
        except native_probe.ProbeUnavailable:
            return None

    def _allocator_of(self, reply: dict[str, Any] | None) -> AllocatorSnapshot | None:
        if reply is None:
            return None
        from workbench.protocol.replies import BadReply, probe_stats

        try:
            stats = probe_stats(reply)
        except BadReply:
            return None
        self.sources["allocator"] = "probe"
        if self.allocator_info is None:
            self.allocator_info = {"backend": stats.backend, "version": stats.version, "library": stats.library}
        return native_probe.snapshot_from_stats(stats)

    def _ask_agent(self) -> dict[str, Any] | None:
        if self.use_jcmd:
            return None
        try:
            return jvm_agent.query_agent(self.pid, "stats", timeout=2.0)
        except jvm_agent.AgentUnavailable:
            return None

    def _jvm_of(self, reply: dict[str, Any] | None,
                jcmd_nmt: NmtSummary | None = None) -> tuple[NmtSummary | None, dict[str, Any] | None, str | None]:
        if self.use_jcmd:
            return jcmd_nmt, None, None
        if reply is None:
            return None, None, None
        from workbench.protocol.replies import BadReply, agent_stats

        try:
            stats = agent_stats(reply)
        except BadReply:
            return None, None, None
        self.sources["jvm"] = "agent"
        if self.jvm_info is None:
            self.jvm_info = {"java_version": stats.java_version, "vm_name": stats.vm_name}
        nmt = parse_summary(stats.nmt) if stats.nmt is not None else None
        return nmt, stats.runtime(), stats.nmt

    def _jcmd_nmt(self) -> NmtSummary | None:
        if self.jcmd is None:
            return None
        try:
            out = subprocess.run([self.jcmd, str(self.pid), "VM.native_memory", "summary", "scale=b"],
                                 capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
            summary = parse_summary(out)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None
        self.sources["jvm"] = "jcmd"
        return summary

    def _read_process(self) -> tuple[ProcessSnapshot, str]:
        """The program's mappings and the text they came from: by the C reader when there is one (a reader the
        kernel refuses, EACCES or EPERM on pagemap, is dropped for smaps in Python), else smaps parsed in Python."""
        reader = self.reader
        if reader is None:
            return read_process(self.pid)
        if self._raw_fd is None:
            self._raw_fd = os.memfd_create("workbench-raw", os.MFD_CLOEXEC)
        os.ftruncate(self._raw_fd, 0)
        os.lseek(self._raw_fd, 0, os.SEEK_SET)
        try:
            found = reader.read_process(raw_fd=self._raw_fd, pid=self.pid)
        except native_probe.RawWriteFailed:
            return read_process(self.pid)  # the memfd refused the text (out of memory): smaps, figures and text
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ESRCH):
                raise ProcessLookupError(self.pid) from None
            if error.errno not in (errno.EACCES, errno.EPERM):
                raise
            self.reader = None
            return read_process(self.pid)
        size = os.lseek(self._raw_fd, 0, os.SEEK_END)
        text = os.pread(self._raw_fd, size, 0).decode("utf-8", "replace")
        return summarize(found.mappings, source=found.source), text

    def close(self) -> None:
        """Release what reading needed (the reader's text buffer)."""
        if self._raw_fd is not None:
            os.close(self._raw_fd)
            self._raw_fd = None

    def capture(self, label: str) -> Captured | None:
        """A full snapshot's readings, as they came: the mappings, the agent's and the probe's replies unvalidated
        (nothing is imported, nothing written); None when the process is gone. ``complete`` makes the snapshot."""
        began = time.perf_counter()
        try:
            process, smaps = self._read_process()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        if process.rss_bytes == 0:
            return None  # an exiting process (its mappings already gone): no figure of it is a measurement
        agent = self._ask_agent()
        jcmd_nmt = self._jcmd_nmt() if self.use_jcmd else None
        probe = self._ask_probe()
        return Captured(label, self.t_ms(), round((time.perf_counter() - began) * 1000, 3), process, smaps, agent,
                        probe, jcmd_nmt)

    def complete(self, captured: Captured) -> dict[str, Any]:
        """The snapshot of ``captured``: its replies read, its raw text written to the run directory."""
        nmt, runtime, nmt_text = self._jvm_of(captured.agent, captured.jcmd_nmt)
        allocator = self._allocator_of(captured.probe)
        snapshot = {
            "label": captured.label, "t_ms": captured.t_ms, "cost_ms": captured.cost_ms,
            "arrow": None, "nmt": asdict(nmt) if nmt else None, "allocator": asdict(allocator) if allocator else None,
            "process": asdict(captured.process), "jvm_runtime": runtime,
        }
        try:
            layout.write_raw(self.run_dir, "smaps", captured.label, "txt", captured.smaps)
            if nmt_text:
                layout.write_raw(self.run_dir, "nmt", captured.label, "txt", nmt_text)
        except WriteFailed as failure:
            self._failed(failure)  # the figures are kept in the report; their raw text could not be
        return snapshot

    def _failed(self, failure: WriteFailed) -> None:
        if self.write_failure is None:
            self.write_failure = failure
        self.stop()

    def take(self, label: str, read: Callable[[], None] | None = None) -> Captured | None:
        """A labelled snapshot kept in the report (completed now when reading is ready, else once it is); None when
        the process is gone. ``read`` is called once the layers are read (or their reading failed), before the
        snapshot is completed (exec's `exit` lets the JVM go on exiting there)."""
        with self._lock:
            try:
                captured = self.capture(label)
            finally:
                if read is not None:
                    read()
            if captured is not None:
                self._keep(captured)
            return captured

    def keep(self, captured: Captured) -> None:
        """``captured`` (taken by ``capture``), kept in the report like ``take``'s."""
        with self._lock:
            self._keep(captured)

    def _keep(self, captured: Captured) -> None:
        self._pending.append(captured)
        if self.ready.is_set():
            self._complete_pending()

    def has_label(self, label: str) -> bool:
        with self._lock:
            return any(s["label"] == label for s in self.snapshots) or any(c.label == label for c in self._pending)

    def _complete_pending(self) -> None:
        for captured in self._pending:
            self.snapshots.append(self.complete(captured))
        self._pending.clear()

    def finish(self) -> None:
        """Complete what was taken and not completed yet (this imports what reading needs, if nothing has)."""
        with self._lock:
            self._complete_pending()
            if self._latest_captured is not None:
                self.latest = self.complete(self._latest_captured)
                self._latest_captured = None

    def _ask_sample(self, count: int) -> RawSample | None:
        began = time.perf_counter()
        try:
            status = read_status(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            return None
        probe = self._ask_probe()
        agent, jcmd_nmt = None, None
        if count % self.nmt_every == 0:
            agent = self._ask_agent()
            jcmd_nmt = self._jcmd_nmt() if self.use_jcmd else None
        return RawSample(self.t_ms(), status, probe, agent, jcmd_nmt, count % self.nmt_every == 0,
                         time.perf_counter() - began)

    def _sample_of(self, raw: RawSample) -> dict[str, Any]:
        """The timeline's row of ``raw``; its cost is the reading's and this reading of the replies'."""
        began = time.perf_counter()
        allocator = self._allocator_of(raw.probe)
        nmt = self._jvm_of(raw.agent, raw.jcmd_nmt)[0] if raw.with_nmt else None
        sample: dict[str, Any] = dict(make_sample(raw.t_ms, None, raw.status, None, allocator, nmt))
        sample["cost_us"] = round((raw.read_s + time.perf_counter() - began) * 1e6, 1)
        return sample

    def run(self, full_every_s: float = 1.0) -> None:
        """Sample until stop() or the process exits; keep the latest full snapshot for the end."""
        try:
            self._run(full_every_s)
        except WriteFailed as failure:
            self._failed(failure)

    def _run(self, full_every_s: float) -> None:
        with appending(self.run_dir / layout.SAMPLES) as out:
            count, next_full = 0, 0.0
            waiting: list[RawSample] = []  # read before reading was ready

            def write_waiting() -> None:
                for raw in waiting:
                    out.write_line(json.dumps(self._sample_of(raw)))
                waiting.clear()

            while not self._stop.is_set():
                raw = self._ask_sample(count)
                if raw is None:
                    break
                waiting.append(raw)
                if self.ready.is_set():
                    write_waiting()
                    if self._pending:
                        with self._lock:
                            self._complete_pending()
                if time.monotonic() >= next_full:
                    with self._lock:  # completed once, by finish(): only the latest one is ever reported
                        self._latest_captured = self.capture("last") or self._latest_captured
                    next_full = time.monotonic() + full_every_s
                count += 1
                self._stop.wait(self.interval_s)
            write_waiting()

    def stop(self) -> None:
        self._stop.set()


class ControlServer:
    """`workbench snapshot PID --label L` reaches a running `exec` here: <probe dir>/exec-<pid>.sock, mode 0600."""

    def __init__(self, sampler: ExternalSampler, directory: Path) -> None:
        self.path = directory / f"{CONTROL_PREFIX}{sampler.pid}.sock"
        self._sampler = sampler
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server.bind(str(self.path))
        finally:
            os.umask(old_umask)
        self._server.listen(4)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    request = connection.makefile("r").readline().strip()
                    command, _, label = request.partition(" ")
                    answer: dict[str, Any]
                    if command != "snapshot" or not label:
                        answer = {"error": "expected: snapshot LABEL"}
                    elif (bad := _label_problem(label)) is not None:
                        answer = {"error": f"--label: {bad}"}
                    elif self._sampler.has_label(label) or label in ("start", "last"):
                        answer = {"error": f"--label: a snapshot labelled {label!r} exists already"}
                    else:
                        taken = self._sampler.take(label)
                        answer = {"label": label, "t_ms": taken.t_ms} if taken else {"error": "process gone"}
                    connection.sendall((json.dumps(answer) + "\n").encode())
                except (OSError, ValueError):
                    continue

    def close(self) -> None:
        """Stop serving and remove the socket; the program's own (probe, agent) too when it is gone, as a program
        that crashed or was killed leaves them."""
        self._server.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        reclaim_stale(self.path.parent, self._sampler.pid)


def _label_problem(label: str) -> str | None:
    from workbench.values import parse_label

    try:
        parse_label(label)
    except ValueError as error:
        return str(error)
    return None


def request_snapshot(pid: int, label: str, directory: Path | None = None, timeout: float = 30) -> dict[str, Any]:
    """Ask the `workbench exec` that runs PID for a labelled snapshot."""
    path = (directory or native_probe.probe_dir()) / f"{CONTROL_PREFIX}{pid}.sock"
    return json.loads(ask(path, f"snapshot {label}", timeout, 1 << 16))  # type: ignore[no-any-return]


def find_jcmd(java: str | None) -> str | None:
    """jcmd beside the program's java, else on PATH."""
    if java:
        candidate = Path(java).resolve().parent / "jcmd"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("jcmd")


def external_report(sampler: ExternalSampler, argv: list[str], shown: list[str], exit_code: int | None,
                    allocator: AllocatorChoice | None, malloc_conf: str | None, java_home: str, run_dir: RunDir,
                    interrupted_by: str | None = None, error: RunError | None = None) -> Report:
    """The report of a program that `exec` ran (``exit_code`` set) or a process `attach` watched (None)."""
    from workbench.report.build import with_deltas
    from workbench.report.model import (
        AllocatorSection, Checks, JvmSection, ProgramSection, Report, RunError, ScenarioSection, snapshot_adapter,
    )

    sampler.finish()
    raw = list(sampler.snapshots)
    # "last" (the latest periodic one) only stands in for an end that was not seen: no "exit" snapshot.
    exited = any(s["label"] == "exit" for s in raw)
    if not exited and sampler.latest is not None and (not raw or sampler.latest["t_ms"] > raw[-1]["t_ms"]):
        raw.append(sampler.latest)
    snapshots, baseline = with_deltas([snapshot_adapter().validate_python(s) for s in raw], "unknown")
    info = sampler.allocator_info or {}
    jvm = sampler.jvm_info or {}
    hs_err = run_dir.hs_err()
    if error is None and sampler.write_failure is not None:
        error = RunError(type=WriteFailed.__name__, message=sampler.write_failure.message)
    return Report(
        scenario=ScenarioSection(name="exec" if exit_code is not None else f"attach {sampler.pid}",
                                 description=_shorten(shlex.join(shown)), source=shlex.join(shown)),
        allocator=AllocatorSection(
            name=allocator.name if allocator else "detected",
            library=str(allocator.library) if allocator and allocator.library else None,
            version=info.get("version"), malloc_conf=malloc_conf, backend=info.get("backend"),
            detected_library=info.get("library"), config_prof=None, config_stats=None,
            provenance=allocator.provenance if allocator else Provenance("none"),
        ),
        jvm=JvmSection(java_home=java_home, version=jvm.get("java_version"), vm=jvm.get("vm_name"), options=argv[1:],
                       allocation_manager="unknown", nmt="summary" if any(s.nmt for s in snapshots) else "off",
                       pyarrow_memory_pool=None),
        snapshots=snapshots, checks=Checks(), status="failed" if error else "ok", error=error, baseline=baseline,
        run_dir=str(run_dir.path), worker_log=None, hs_err=str(hs_err) if hs_err else None,
        interrupted_by=interrupted_by,
        program=ProgramSection(argv=argv, pid=sampler.pid, exit_code=exit_code, sources=dict(sampler.sources)),
    )


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit // 2 - 2] + " ... " + text[-(limit // 2 - 3):]
