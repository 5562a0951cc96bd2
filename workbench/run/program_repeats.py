"""`workbench exec --repeat N`: the same program run N times, each a fresh program (a new JVM with the allocator, the
probe and the agent), each in its own ``repeat-K`` directory; the run directory gets the median run's report carrying
every run's figures, as ``run --repeat`` does for a scenario (report/repeats.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from workbench._files import write_atomically
from workbench.report.model import report_to_json
from workbench.report.repeats import with_repeats
from workbench.run.program import PreparedProgram, ProgramResult, run_program
from workbench.run.run_dir import RunDir, run_dir_name


def run_program_repeated(program: PreparedProgram, run_dir: RunDir, count: int, html: bool = True,
                         leave_running: bool = False, text: bool = False) -> ProgramResult:
    """``count`` runs of the program, one after the other; stops after a run that was interrupted. The result's exit
    code is the first run's that was not 0 (0 when all were)."""
    results: list[ProgramResult] = []
    dirs: list[str] = []
    for index in range(count):
        sub = RunDir.claim(run_dir_name("exec", program.allocator, program.settings.label()),
                           run_dir.path / f"repeat-{index + 1}")
        results.append(run_program(program, sub, html=html, leave_running=leave_running, text=text))
        dirs.append(str(sub.path))
        if results[-1].report.interrupted_by is not None:
            break
    report = dataclasses.replace(with_repeats([r.report for r in results], dirs), run_dir=str(run_dir.path))
    write_atomically(run_dir.path / "report.json", report_to_json(report))
    if html:
        from workbench.report.html import render_html  # jinja2: imported only when a report is drawn

        shown = Path(dirs[report.repeats.shown]) if report.repeats else run_dir.path
        write_atomically(run_dir.path / "report.html", render_html(report, shown))
    exit_code = next((r.exit_code for r in results if r.exit_code != 0), 0)
    return ProgramResult(report, exit_code)
