"""Integration tests run the real tool in a subprocess, as a user would: `python -m workbench ...`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
JVM_DIR = Path("/usr/lib/jvm")
# Bundled scenarios too big for the test suite: run once, alone on the machine, by the benchmark named here.
BENCHMARK_ONLY = {"intvector-8g": "8 GiB of vectors: python benchmarks/bench_goals.py --scale"}


def find_jdk(feature: int) -> Path:
    """The home of an installed JDK of this feature version (from each JDK's ``release`` file); a path that does
    not exist when there is none, so that ``skipif(not JDK.is_dir())`` says what is missing."""
    if JVM_DIR.is_dir():
        for home in sorted(JVM_DIR.iterdir()):
            release = home / "release"
            if home.is_symlink() or not release.is_file() or not (home / "bin" / "java").exists():
                continue
            match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.MULTILINE)
            if match and int(match.group(1)) == feature:
                return home
    return JVM_DIR / f"no-jdk-{feature}-installed"


JDK17 = find_jdk(17)
JDK25 = find_jdk(25)


def run_workbench(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process; the output is shown by pytest when an assertion fails."""
    full_env = {**os.environ, **(env or {})}
    if cwd is None:
        # Runs write runs/<...>/ into the working directory: keep them out of the checkout.
        cwd = Path(os.environ.get("WORKBENCH_TEST_CWD", "/tmp")) / "workbench-test-runs"
        cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
    )
    print(f"$ workbench {' '.join(args)}\n--- exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def run_json(tmp_path: Path, *args: str, expect_exit: int = 0) -> dict[str, Any]:
    out = tmp_path / "report.json"
    result = run_workbench("run", *args, "--json", str(out))
    assert result.returncode == expect_exit, result.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def by_label(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["label"]: s for s in report["snapshots"]}


@pytest.fixture(scope="session")
def first_use_builds_done() -> None:
    """Build what a first run builds (the Java kernels, jemalloc), so tests can assert a run's stderr is empty."""
    from workbench.toolchain.jemalloc import ensure_jemalloc
    from workbench.toolchain.maven import kernels_classpath

    kernels_classpath()
    ensure_jemalloc()


@pytest.fixture(autouse=True)
def builds_for_jvm_tests(request: pytest.FixtureRequest) -> None:
    """Only tests that start a JVM wait for the first-use builds; a pure input check does not wait for Maven."""
    if request.node.get_closest_marker("jvm") is not None:
        request.getfixturevalue("first_use_builds_done")


@pytest.fixture(scope="session")
def jemalloc_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_json(tmp_path_factory.mktemp("jemalloc"), "arrow-intvector", "--allocator", "jemalloc", "--hold", "300ms")


@pytest.fixture(scope="session")
def glibc_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_json(tmp_path_factory.mktemp("glibc"), "arrow-intvector", "--allocator", "glibc", "--hold", "300ms")
