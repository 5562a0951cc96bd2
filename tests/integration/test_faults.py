"""Fault injection: each way a run can die, done on purpose; nothing measured is lost and nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, run_workbench

pytestmark = [pytest.mark.jvm, pytest.mark.slow]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ndescription: fault injection\nsample_interval: 20ms\n" + text)
    return path


def processes_mentioning(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def assert_failed_with_evidence(out: Path, error_type: str, labels: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and report["error"]["type"] == error_type, report["error"]
    assert [s["label"] for s in report["snapshots"]] == labels
    assert len((out / "samples.jsonl").read_text().splitlines()) >= 3
    assert (out / "timeline.parquet").is_file() and (out / "report.html").is_file()
    assert processes_mentioning(str(out)) == []  # no process started by the run outlives it
    assert not (Path("/tmp") / "hsperfdata_root" / str(report["worker_exit_code"])).exists()
    return report


def test_direct_buffer_out_of_memory_error(tmp_path: Path) -> None:
    scenario = write(tmp_path, "direct-oom", "jvm:\n  options: [-XX:MaxDirectMemorySize=16m]\nsteps:\n"
                     "  - snapshot: baseline\n  - hold: 200ms\n  - direct_buffer: {name: big, size: 64MiB}\n"
                     "  - snapshot: never\n")
    out = tmp_path / "run"
    result = run_workbench("run", str(scenario), "--out", str(out), "--allocator", "glibc")
    assert result.returncode == 3
    report = assert_failed_with_evidence(out, "java.lang.OutOfMemoryError", ["baseline"])
    # JDK 17 words it "Cannot reserve 67108864 bytes of direct buffer memory (allocated: ..., limit: 16777216)".
    assert "direct buffer memory" in report["error"]["message"].lower() and report["error"]["kind"] == "direct_buffer"
    assert "java.lang.OutOfMemoryError" in result.stderr and "Traceback" not in result.stderr


def test_native_crash_keeps_the_hs_err_file(tmp_path: Path) -> None:
    scenario = write(tmp_path, "segv", "steps:\n  - snapshot: baseline\n  - hold: 200ms\n  - fault: segfault\n"
                     "  - snapshot: never\n")
    out = tmp_path / "run"
    result = run_workbench("run", str(scenario), "--out", str(out), "--allocator", "glibc")
    assert result.returncode == 3
    report = assert_failed_with_evidence(out, "JvmCrash", ["baseline"])
    assert "SIGSEGV" in report["error"]["message"] and report["error"]["kind"] == "fault"
    assert Path(report["hs_err"]).parent == out.resolve()
    assert "SIGSEGV" in Path(report["hs_err"]).read_text()


def test_timeout_stops_the_whole_worker_group(tmp_path: Path) -> None:
    scenario = write(tmp_path, "hang", "timeout: 3s\nsteps:\n  - snapshot: baseline\n  - hold: 1h\n"
                     "  - snapshot: never\n")
    out = tmp_path / "run"
    began = time.monotonic()
    result = run_workbench("run", str(scenario), "--out", str(out), "--allocator", "glibc")
    assert result.returncode == 3 and time.monotonic() - began < 60
    report = assert_failed_with_evidence(out, "Timeout", ["baseline"])
    assert report["error"]["kind"] == "hold"


def start_and_wait_for_baseline(tmp_path: Path, name: str) -> tuple[subprocess.Popen[str], Path]:
    scenario = write(tmp_path, name, "steps:\n  - snapshot: baseline\n  - hold: 1h\n  - snapshot: never\n")
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "workbench", "run", str(scenario), "--out", str(out),
                                "--allocator", "glibc"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "nmt" / "baseline.txt").exists() or len((out / "samples.jsonl").read_text().splitlines()) < 5:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    return process, out


def test_worker_killed_from_outside(tmp_path: Path) -> None:
    process, out = start_and_wait_for_baseline(tmp_path, "killed")
    (worker,) = [pid for pid in processes_mentioning(str(out)) if pid != process.pid]
    os.kill(worker, signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3
    report = assert_failed_with_evidence(out, "Signal", ["baseline"])
    assert "SIGKILL" in report["error"]["message"] and "OOM killer" in report["error"]["message"]


def wait_gone(pids: list[int], seconds: float = 20) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if Path(f"/proc/{pid}").exists() and
            b"workbench" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_killing_workbench_with_sigkill_takes_the_worker_and_its_jvm_along(tmp_path: Path) -> None:
    process, out = start_and_wait_for_baseline(tmp_path, "orphaned")
    (worker,) = [pid for pid in processes_mentioning(str(out)) if pid != process.pid]
    process.kill()
    process.communicate(timeout=30)
    assert wait_gone([worker]) == []
    samples = len((out / "samples.jsonl").read_text().splitlines())
    time.sleep(0.5)
    assert len((out / "samples.jsonl").read_text().splitlines()) == samples  # nobody appends any more


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_workbench_writes_the_partial_report(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    process, out = start_and_wait_for_baseline(tmp_path, f"interrupted-{sig.name.lower()}")
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert stderr.strip() == f"workbench: interrupted by {sig.name}; the partial report is in {out}"
    report = assert_failed_with_evidence(out, "Interrupted", ["baseline"])
    assert report["interrupted_by"] == sig.name


def test_four_runs_at_once_give_four_intact_run_directories(tmp_path: Path) -> None:
    processes = [subprocess.Popen([sys.executable, "-m", "workbench", "run", "arrow-intvector", "--hold", "0",
                                   "--quiet"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 4
    for run in runs:
        report = json.loads((run / "report.json").read_text())
        assert report["status"] == "ok" and report["run_dir"] == str(run.resolve())
        assert next(s for s in report["snapshots"] if s["label"] == "allocated")["arrow"]["allocated_bytes"] == 524288


def test_scenario_values_stay_data_and_never_reach_a_shell(tmp_path: Path) -> None:
    scenario = tmp_path / "inject.yaml"
    scenario.write_text((ROOT / "scenarios" / "arrow-intvector.yaml").read_text()
                        .replace("options: []", "options: ['-Dx=$(touch pwned1); touch pwned2']"))
    out = tmp_path / "run"
    result = run_workbench("run", str(scenario), "--out", str(out), "--hold", "0", "--allocator", "glibc",
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert "-Dx=$(touch pwned1); touch pwned2" in report["jvm"]["options"]
    # MALLOC_CONF goes to jemalloc as it is, and jemalloc refuses this one before the run starts.
    scenario.write_text(scenario.read_text().replace("malloc_conf: null", "malloc_conf: 'x; touch pwned3'"))
    refused = run_workbench("run", str(scenario), "--out", str(tmp_path / "refused"), "--hold", "0", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"workbench: {scenario}: malloc_conf x; touch pwned3: jemalloc refuses it "
                                      "(Malformed conf string)")
    assert not any((tmp_path / f"pwned{n}").exists() or (out / f"pwned{n}").exists() for n in (1, 2, 3))


def test_symlinks_planted_for_run_directories_are_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    result = run_workbench("run", "arrow-intvector", "--out", str(tmp_path / "link"), cwd=tmp_path)
    assert result.returncode == 2 and "is a symbolic link" in result.stderr
    (tmp_path / "runs").symlink_to(elsewhere)
    result = run_workbench("run", "arrow-intvector", cwd=tmp_path)
    assert result.returncode == 2 and "'runs' is a symbolic link" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    result = run_workbench("run", "arrow-intvector", "--hold", "0", "--out", str(tmp_path / "run"),
                           env={"TMPDIR": str(tmpdir)})
    assert result.returncode == 0
    assert list(tmpdir.iterdir()) == []
