"""``workbench doctor``: what this machine has and lacks for runs, one line per check, with what to install or set."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from workbench._errors import BadInput
from workbench.doctor import DEFAULT_RUN, Check, run_checks

SCHEMA = "workbench.doctor/1"

_STYLES = {"ok": "green", "WARN": "yellow", "FAIL": "bold red"}


def _render_line(console: Console, check: Check) -> None:
    line = Text()
    line.append(f"{check.status:<4}", style=_STYLES[check.status])
    line.append(f"  {check.check:<27} {check.detail}")
    if check.is_problem:
        line.append(" (stops a default run)", style="bold")
    console.print(line, soft_wrap=True)
    if check.fix:
        console.print(Text(f"{'':<6}fix: {check.fix}", style="cyan"), soft_wrap=True)


def doctor(
    build: Annotated[
        bool,
        typer.Option("--build", help="Build what is missing (the Java kernels, jemalloc) instead of reporting it."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help=f"Print the checks as JSON ({SCHEMA}) instead of lines, for CI.")
    ] = False,
) -> None:
    """Check this machine for runs: Python, the JDKs (NMT in a JPype-started VM), Maven and the Java kernels, each
    allocator (preloaded into a fresh process), the C toolchain and /proc; one line per check, with what to install
    or set for each problem. Nothing is built unless --build is given.

    Exit codes: 0 a default run (`workbench run arrow-intvector`) can work, warnings or not; 2 it cannot.
    """
    console = Console(highlight=False)
    checks: list[Check] = []
    for check in run_checks(build):
        checks.append(check)
        if not as_json:
            _render_line(console, check)
    problems = sum(check.is_problem for check in checks)
    if as_json:
        document = {"schema": SCHEMA, "default_run_ok": problems == 0, "problems": problems,
                    "checks": [asdict(check) for check in checks]}
        print(json.dumps(document, indent=2))
    else:
        failed = sum(check.status == "FAIL" for check in checks)
        warned = sum(check.status == "WARN" for check in checks)
        verdict = "can work" if problems == 0 else "cannot work"
        console.print(f"{failed} FAIL, {warned} WARN: a default run ({DEFAULT_RUN}) {verdict}", soft_wrap=True)
    if problems:
        raise BadInput(f"doctor found {problems} problem(s) that stop a default run")
