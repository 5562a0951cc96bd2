"""The run directory: claimed new for each run, filled as the run goes, finished with its report."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench._errors import BadInput, RunFailed
from workbench._files import WriteFailed, os_reason, write_atomically
from workbench.protocol import layout
from workbench.toolchain.allocators import AllocatorChoice

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported by finish() and prepare_report_writers(): not before `exec` has started its program
    from workbench.report.model import Report

RUNS = Path("runs")


def run_dir_name(what: str, allocator: AllocatorChoice | None, malloc_conf: str | None) -> str:
    """``<time>-<what>-<allocator>[-<malloc_conf>]``, safe as a file name."""
    if allocator is None:
        label = "detected"
    else:
        label = allocator.name if allocator.provenance.kind != "file" else Path(allocator.name).name
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label + (f"-{malloc_conf}" if malloc_conf else ""))
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', what)}-{label}"[:200]


@dataclass(frozen=True)
class RunDir:
    """One run's directory (absolute); every file in it is named by :mod:`workbench.protocol.layout`."""

    path: Path

    @classmethod
    def claim(cls, name: str, out: Path | None) -> RunDir:
        """``out`` (new or empty), else ``runs/<name>`` made new (with a suffix when taken this second).

        The claim is an exclusive create of ``.workbench-run`` in the directory: of two runs given the same ``--out``
        at once, one gets it and the other is refused, whoever made the directory. A path that cannot be created
        (read-only, a name too long, ...) is bad input: exit 2, naming the option.
        """
        if out is not None:
            try:
                return cls(_claim_out(out))
            except OSError as error:  # a name too long for the file system, a loop of symlinks
                raise BadInput(f"--out {out}: {os_reason(error)}") from None
        if RUNS.is_symlink():
            raise BadInput(f"{RUNS.resolve()}: 'runs' is a symbolic link; refusing to write run directories through "
                           "it (remove it, or give --out DIR)")
        try:
            RUNS.mkdir(exist_ok=True)
        except OSError as error:
            raise BadInput(f"{RUNS.resolve()}: cannot create the directory for runs here: {os_reason(error)} "
                           "(give --out DIR)") from None
        for suffix in [""] + [f"-{n}" for n in range(2, 100)]:
            path = RUNS / f"{name}{suffix}"
            try:
                path.mkdir()  # never follows a symlink planted at that name: mkdir fails on any existing entry
            except FileExistsError:
                continue
            except OSError as error:
                raise BadInput(f"{path.resolve()}: cannot create the run directory: {os_reason(error)} "
                               "(give --out DIR)") from None
            _claim(path, str(path.resolve()))
            return cls(path.resolve())
        raise BadInput(f"{RUNS}: too many runs named {name} this second")

    @property
    def spec(self) -> Path:
        return self.path / layout.SPEC

    @property
    def worker_log(self) -> Path:
        return self.path / layout.WORKER_LOG

    @property
    def samples(self) -> Path:
        return self.path / layout.SAMPLES

    def write_raw(self, kind: str, label: str, suffix: str, text: str) -> Path:
        """A raw file of one snapshot (``smaps/<label>.txt``), written whole."""
        return layout.write_raw(self.path, kind, label, suffix, text)

    def hs_err(self) -> Path | None:
        """The JVM's crash report, when it crashed (``-XX:ErrorFile`` points here)."""
        return next(iter(sorted(self.path.glob(layout.HS_ERR_GLOB))), None)

    def finish(self, report: Report, html: bool) -> None:
        """report.json, the timeline as Parquet, and (with ``html``) report.html; each whole or not at all.

        A file that cannot be written does not stop the others (what fits is kept); then RunFailed (exit 3) names
        the first file that could not be written (the worker's, when the run failed on one) and the system's reason.
        """
        from workbench.report.model import report_to_json
        from workbench.report.timeline import write_timeline

        def write_html() -> None:
            from workbench.report.html import render_html  # jinja2: imported only when a report is drawn

            write_atomically(self.path / layout.REPORT_HTML, render_html(report, self.path))

        writes: list[Callable[[], object]] = [
            lambda: write_atomically(self.path / layout.REPORT_JSON, report_to_json(report)),
            lambda: write_timeline(self.samples, self.path / layout.TIMELINE),
            *([write_html] if html else []),
        ]
        failures: list[WriteFailed] = []
        for write in writes:
            try:
                write()
            except WriteFailed as failure:
                failures.append(failure)
        if failures:
            others = [f.path.name for f in failures]
            first = report.error.message if report.error and report.error.type == WriteFailed.__name__ else None
            if first is None:
                first, others = failures[0].message, others[1:]
            raise RunFailed(first + (f" ({', '.join(others)} not written either)" if others else ""))


def at_lowest_priority() -> None:
    """This thread at nice 19 (Linux gives each thread its own): on a busy machine the measured process runs first
    and this thread takes its idle time. Left as it is where that is not allowed."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError:
        pass


def prepare_report_writers(html: bool, text: bool = False, lowest_priority: bool = False) -> None:
    """Import what finishing a run needs (pyarrow for the timeline, the snapshots' adapter, the HTML renderer, the
    text report's rich), so that a thread can do it while the measured process runs: only the writing is left."""
    if lowest_priority:
        at_lowest_priority()
    import pyarrow.parquet  # noqa: F401  (timeline.parquet)

    import workbench.report.timeline  # noqa: F401
    from workbench.report.model import snapshot_adapter

    snapshot_adapter()  # the deltas' figures are read through it (20 ms to build)

    if html:
        from workbench.report.html import prepare_renderer

        prepare_renderer()
    if text:
        import workbench.report.text  # noqa: F401


def _claim_out(out: Path) -> Path:
    if out.is_symlink():
        raise BadInput(f"--out {out}: is a symbolic link (expected a new or empty directory)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out {out}: exists and is not an empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"--out {out}: cannot create the run directory: {os_reason(error)}") from None
    if out.is_symlink():  # planted between the check and the mkdir
        raise BadInput(f"--out {out}: is a symbolic link (expected a new or empty directory)")
    _claim(out, f"--out {out}")
    return out.resolve()


def _claim(path: Path, named: str) -> None:
    """Create the (empty) claim file exclusively: of any number of runs, exactly one gets it (O_EXCL)."""
    try:
        os.close(os.open(path / layout.CLAIM, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644))
    except FileExistsError:
        raise BadInput(f"{named}: already claimed by another run (expected a new or empty directory)") from None
    except OSError as error:
        raise BadInput(f"{named}: cannot claim the run directory: {os_reason(error)}") from None


def crash_line(hs_err: Path) -> str:
    """The line of an hs_err file that says what happened, e.g. ``SIGSEGV (0xb) at pc=0x..., pid=123, tid=456``."""
    for line in hs_err.read_text(errors="replace").splitlines()[:20]:
        if line.startswith("#  ") and ("SIG" in line or "Internal Error" in line or "EXCEPTION" in line):
            return "the JVM crashed: " + line[3:].strip()
    return "the JVM crashed"
