"""The run directory: claimed new for each run, filled as the run goes, finished with its report."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from workbench._errors import BadInput
from workbench._files import write_atomically
from workbench.protocol import layout
from workbench.report.model import Report, report_to_json
from workbench.report.timeline import write_timeline
from workbench.toolchain.allocators import AllocatorChoice

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
        """``out`` (new or empty), else ``runs/<name>`` made new (with a suffix when taken this second)."""
        if out is not None:
            if out.is_symlink():
                raise BadInput(f"--out {out}: is a symbolic link (expected a new or empty directory)")
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise BadInput(f"--out {out}: exists and is not an empty directory")
            out.mkdir(parents=True, exist_ok=True)
            return cls(out.resolve())
        if RUNS.is_symlink():
            raise BadInput(f"{RUNS.resolve()}: 'runs' is a symbolic link; refusing to write run directories through "
                           "it (remove it, or give --out DIR)")
        RUNS.mkdir(exist_ok=True)
        for suffix in [""] + [f"-{n}" for n in range(2, 100)]:
            try:
                path = RUNS / f"{name}{suffix}"
                path.mkdir()  # never follows a symlink planted at that name: mkdir fails on any existing entry
                return cls(path.resolve())
            except FileExistsError:
                continue
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
        """The timeline as Parquet, report.json, and (with ``html``) report.html; each written whole."""
        write_timeline(self.samples, self.path / layout.TIMELINE)
        write_atomically(self.path / layout.REPORT_JSON, report_to_json(report))
        if html:
            from workbench.report.html import render_html  # matplotlib: imported only when a report is drawn

            write_atomically(self.path / layout.REPORT_HTML, render_html(report, self.path))


def crash_line(hs_err: Path) -> str:
    """The line of an hs_err file that says what happened, e.g. ``SIGSEGV (0xb) at pc=0x..., pid=123, tid=456``."""
    for line in hs_err.read_text(errors="replace").splitlines()[:20]:
        if line.startswith("#  ") and ("SIG" in line or "Internal Error" in line or "EXCEPTION" in line):
            return "the JVM crashed: " + line[3:].strip()
    return "the JVM crashed"
