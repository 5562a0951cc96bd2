"""pytest plugin (entry point ``pytest11``): memory regression tests in your own suite.

    def test_batch_stays_small(workbench_run):
        report = workbench_run("scenarios/my-batch.yaml", allocator="jemalloc")
        assert_layer(report, "arrow.allocated_bytes", at="filled", le="16MiB")
        assert_layer(report, "process.anon_rss_bytes", at="filled", delta="baseline", lt="64MiB")

Each call runs the scenario the way a user would, `python -m workbench run` in a subprocess (the JVM cannot restart
inside the test process, and HotSpot's signal handlers must not meet pytest's faulthandler), and returns the typed
report read back from the run directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench.run.expectations import OPS, lookup, normalize
from workbench.report.model import Report, report_from_dict, report_to_dict

RunScenario = Callable[..., Report]


class WorkbenchRunFailed(AssertionError):
    """The workbench exited with an unexpected code; carries its output."""


def run_scenario(scenario: str | Path | dict[str, Any], out: Path, allocator: str | None = None,
                 malloc_conf: str | None = None, hold: str | None = None, java_home: str | None = None,
                 expect_exit: int | None = 0, timeout: float = 600, trust: bool = False,
                 profile: bool = False) -> Report:
    """Run one scenario (a bundled name, a YAML path, or an inline dict) and return its report; ``profile`` records
    native call sites (``--profile``: each snapshot's ``call_sites``)."""
    if isinstance(scenario, dict):
        path = out.parent / f"{out.name}-scenario.yaml"
        path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
        scenario = path
    args = [sys.executable, "-m", "workbench", "run", str(scenario), "--out", str(out), "--quiet",
            *(["--trust"] if trust else []), *(["--profile"] if profile else [])]
    for option, value in (("--allocator", allocator), ("--malloc-conf", malloc_conf), ("--hold", hold),
                          ("--java-home", java_home)):
        if value is not None:
            args += [option, value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if expect_exit is not None and result.returncode != expect_exit:
        raise WorkbenchRunFailed(
            f"workbench run {scenario} exited {result.returncode}, expected {expect_exit}\n"
            f"--- stderr\n{result.stderr}\n--- stdout (tail)\n{result.stdout[-4000:]}"
        )
    report_path = out / "report.json"
    if not report_path.exists():
        raise WorkbenchRunFailed(f"workbench run {scenario} wrote no report (exit {result.returncode}):\n{result.stderr}")
    return report_from_dict(json.loads(report_path.read_text(encoding="utf-8")))


def measured(report: Report, path: str, at: str | None = None, delta: str | None = None) -> Any:
    """A figure of the report by JSON path; at a snapshot with ``at``, as a change since ``delta``."""
    data = report_to_dict(report)
    snapshots = {s["label"]: s for s in data["snapshots"]}
    base = snapshots[at] if at is not None else data
    found, value = lookup(base, path)
    if not found:
        raise KeyError(f"{path} is not in the report" + (f" at '{at}'" if at else ""))
    if delta is not None:
        found, before = lookup(snapshots[delta], path)
        value = value - before
    return value


def assert_layer(report: Report, path: str, at: str | None = None, delta: str | None = None,
                 **comparisons: Any) -> None:
    """``assert_layer(report, "arrow.allocated_bytes", at="filled", le="16MiB")``: every comparison must hold."""
    value = measured(report, path, at, delta)
    for op, expected in comparisons.items():
        if op not in OPS:
            raise TypeError(f"unknown comparison {op!r} (expected one of: {', '.join(OPS)})")
        if value is None or not OPS[op](value, normalize(expected)):
            where = (f" at '{at}'" if at else "") + (f" (change since '{delta}')" if delta else "")
            raise AssertionError(f"{path}{where}: expected {op} {expected}, measured {value!r}")


@pytest.fixture
def workbench_run(tmp_path: Path) -> RunScenario:
    """Run scenarios under a chosen allocator; each call gets its own run directory under tmp_path."""
    counter = iter(range(1_000_000))

    def run(scenario: str | Path | dict[str, Any], **options: Any) -> Report:
        return run_scenario(scenario, tmp_path / f"run-{next(counter)}", **options)

    return run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "workbench: a memory test that runs a workbench scenario")
