"""``--profile`` through the other commands: attach (async-profiler loaded into a running JVM) and compare."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, by_label, run_workbench

pytestmark = [pytest.mark.jvm, pytest.mark.slow]


def test_attach_profile_records_what_the_running_jvm_allocates_meanwhile(tmp_path: Path) -> None:
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(ROOT / "tests" / "integration" / "programs" / "AttachedMain.java")],
                   check=True)
    go = tmp_path / "go"
    program = subprocess.Popen(["java", "-cp", str(classes), "AttachedMain", str(go)], stdout=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL)
    out = tmp_path / "run"
    attach = None
    try:
        assert program.stdout is not None and program.stdout.readline().strip() == "ready"
        attach = subprocess.Popen([sys.executable, "-m", "workbench", "attach", str(program.pid), "--profile",
                                   "--duration", "8s", "--quiet", "--out", str(out)], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        # async-profiler is loaded just before the start snapshot: allocate once that snapshot is written.
        deadline = time.monotonic() + 60
        while not (out / "smaps" / "start.txt").exists() and attach.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()
        assert program.stdout.readline().startswith("allocated")
        _, stderr = attach.communicate(timeout=120)
        assert attach.returncode == 0, stderr
    finally:
        program.kill()
        program.wait()
        if attach is not None and attach.poll() is None:
            attach.kill()
    report = json.loads((out / "report.json").read_text())
    assert report["profile"]["error"] is None
    end = by_label(report)["end"]["call_sites"]
    kept = [s for s in end["sites"] if "AttachedMain.allocate" in s["frames"]]
    # Allocated after the start snapshot, live at the end: its exact size (rounded up to 8 by Unsafe), its own frames.
    assert [(s["bytes"], s["owner"], s["name"], s["delta_bytes"]) for s in kept] == \
        [(2_222_224, "direct-buffer", "AttachedMain.allocate under AttachedMain.main", 2_222_224)]
    assert by_label(report)["start"]["call_sites"]["live_bytes"] < 2_222_224


def test_compare_profile_gives_each_allocator_its_call_sites(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = run_workbench("compare", "arrow-intvector", "--allocators", "glibc,jemalloc", "--profile", "--hold", "0",
                           "--quiet", "--out", str(out), "--json", str(tmp_path / "compare.json"))
    assert result.returncode == 0, result.stderr
    for allocator in ("glibc", "jemalloc"):
        assert f"{allocator}: At 'allocator-closed'" in result.stdout
    # The owners side by side: the pool's 4 MiB chunk under both allocators, in one row.
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "Native call sites by owner at 'allocator-closed' (live bytes)" in " ".join(lines)
    assert "owner glibc jemalloc" in lines and "pool-retained 4.0 MiB 4.0 MiB" in lines
    runs = json.loads((tmp_path / "compare.json").read_text())["runs"]
    for run in runs:
        closed = by_label(run["report"])["allocator-closed"]["call_sites"]
        assert closed["owners"]["pool-retained"] == 4 * 1024 * 1024
