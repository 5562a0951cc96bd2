"""Outputs and leftovers with the real tool: one --out for two runs at once, a run directory that fills up, the
sockets a SIGKILLed `exec` leaves behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_exec import pid_of, reference_command
from workbench._files import is_partial

pytestmark = [pytest.mark.jvm, pytest.mark.slow]


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "workbench", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=300)
    print(f"$ {' '.join(map(str, process.args))}\n--- exit {process.returncode}\n--- stderr\n{stderr}")  # type: ignore[arg-type]
    return process.returncode, stderr


def assert_one_line(stderr: str, *parts: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: "), stderr
    assert "Traceback" not in stderr and all(part in lines[0] for part in parts), stderr


@pytest.mark.parametrize("command", [["run", "arrow-intvector", "--hold", "0", "--quiet", "--allocator", "glibc"],
                                     ["exec", "--allocator", "glibc", "--quiet", "--", "java", "-version"]],
                         ids=["run", "exec"])
def test_two_commands_started_at_once_with_one_out_never_share_it(tmp_path: Path, command: list[str]) -> None:
    """What the user sees: one run, and one line naming --out. (Two real processes rarely reach the claim within
    the same microseconds; the race itself is tests/unit/test_outputs.py's, with claims released by a barrier.)"""
    out = tmp_path / "run"
    where = command.index("--quiet")
    args = [*command[:where], "--out", str(out), *command[where:]]
    outcomes = [finish(p) for p in [start(*args, cwd=tmp_path), start(*args, cwd=tmp_path)]]
    assert sorted(code for code, _ in outcomes) == [0, 2]
    assert_one_line(next(stderr for code, stderr in outcomes if code == 2), f"--out {out}: ")
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "ok" and report["run_dir"] == str(out)
    assert len({json.loads(line)["t_ms"] for line in (out / "samples.jsonl").read_text().splitlines()}) == \
        len((out / "samples.jsonl").read_text().splitlines())  # one run's samples, not two interleaved


def _tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root); ENOSPC cannot be made otherwise")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    yield from _tmpfs(tmp_path, "256k")


def test_a_run_directory_that_fills_up_fails_the_run_and_keeps_what_fitted(small_tmpfs: Path, tmp_path: Path) -> None:
    out = small_tmpfs / "run"
    code, stderr = finish(start("run", "arrow-intvector", "--hold", "0", "--out", str(out), cwd=tmp_path))
    assert code == 3
    # 256 KiB hold the spec, the log, a few samples and the first snapshots' raw files (each about 50 KiB: the
    # mappings written as read, jemalloc's merged statistics); a later raw file of the worker's does not fit.
    assert_one_line(stderr, f"cannot write {out}/", ": No space left on device")
    named = re.search(r"cannot write (\S+): No space left on device", stderr)
    assert named is not None and not Path(named.group(1)).exists()  # nothing half-written in its place
    spec = json.loads((out / "worker-spec.json").read_text())
    assert spec["run_dir"] == str(out)
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and report["error"]["type"] == "WriteFailed"
    assert report["error"]["message"] in stderr
    for line in (out / "samples.jsonl").read_text().splitlines():
        assert json.loads(line)["t_ms"] >= 0  # whole lines only
    assert [p for p in out.rglob("*") if is_partial(p.name)] == []  # no temporary left, no half file
    # What fitted is whole: every allocator statistics file kept is jemalloc's complete JSON.
    for kept in (out / "allocator").iterdir():
        assert json.loads(kept.read_text())["jemalloc"]["stats"]["allocated"] > 0, kept


# A program with 600 threads waiting: about 1,200 mappings more (a stack and its guard each), so the mappings file of
# a snapshot taken while they wait (about 137 KB) is larger than report.json (about 30 KB), and of the two such
# snapshots (the periodic `last` and `exit`, written in either order) the second never fits in 256 KiB beside the
# `start` one (30 KB, before the threads): report.json does. With 400 threads (101 KB each) both could fit, and then
# report.json did not: measured once the agent's socket no longer made the program's mappings a few KB larger.
# The reference program's (about 30 KiB: the maps lines with their Rss and Anonymous) are smaller, and a disk that
# refused one of them would refuse report.json as well.
THREADS_PROGRAM = """
public class Threads {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < 600; i++) {
            Thread thread = new Thread(() -> { try { Thread.sleep(60_000); } catch (InterruptedException e) { } });
            thread.setDaemon(true);
            thread.start();
        }
        Thread.sleep(Long.parseLong(args[0]));
    }
}
"""


def test_exec_into_a_directory_that_fills_up_stops_sampling_and_fails_the_run(small_tmpfs: Path, tmp_path: Path) -> None:
    out = small_tmpfs / "run"
    source = tmp_path / "Threads.java"
    source.write_text(THREADS_PROGRAM)
    code, stderr = finish(start("exec", "--allocator", "glibc", "--out", str(out), "--quiet", "--",
                                "java", str(source), "1500", cwd=tmp_path))
    assert code == 3
    ours = [line for line in stderr.splitlines() if line.startswith("workbench")]  # the rest is the program's
    # (report.html, the largest, may not fit either: then the line says so)
    assert len(ours) == 1 and re.fullmatch(rf"workbench: (WriteFailed: )?cannot write {re.escape(str(out))}/\S+: "
                                           r"No space left on device( \(report.html not written either\))?",
                                           ours[0]), stderr
    assert "Traceback" not in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and report["error"]["type"] == "WriteFailed"
    assert report["program"]["exit_code"] == 0  # the program ran to its end
    assert [p for p in out.rglob("*") if is_partial(p.name)] == []


def sockets(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_sockets_left_by_a_sigkilled_exec_are_reclaimed_by_the_next(tmp_path: Path) -> None:
    directory = tmp_path / "sockets"
    env = {"WORKBENCH_PROBE_DIR": str(directory)}
    out = tmp_path / "killed"
    workbench = start("exec", "--allocator", "glibc", "--out", str(out), "--quiet", "--",
                      *reference_command(60_000), cwd=tmp_path, env=env)
    deadline = time.monotonic() + 60
    while (program := pid_of(str(out))) is None or not (directory / f"exec-{program}.sock").exists():
        assert time.monotonic() < deadline and workbench.poll() is None
        time.sleep(0.1)
    workbench.send_signal(signal.SIGKILL)
    workbench.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{program}").exists():  # it dies with exec (PR_SET_PDEATHSIG), by SIGKILL: nothing cleans up
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stale = [f"agent-{program}.sock", f"exec-{program}.sock", f"probe-{program}.sock"]
    assert sockets(directory) == stale
    code, stderr = finish(start("exec", "--allocator", "glibc", "--out", str(tmp_path / "next"), "--quiet", "--",
                                *reference_command(100), cwd=tmp_path, env=env))
    assert code == 0, stderr
    assert sockets(directory) == []  # the stale ones reclaimed at the start, its own removed at the end


def test_a_program_killed_under_exec_leaves_no_socket(tmp_path: Path) -> None:
    directory = tmp_path / "sockets"
    out = tmp_path / "run"
    workbench = start("exec", "--allocator", "glibc", "--out", str(out), "--quiet", "--",
                      *reference_command(60_000), cwd=tmp_path, env={"WORKBENCH_PROBE_DIR": str(directory)})
    deadline = time.monotonic() + 60
    while (program := pid_of(str(out))) is None or not (directory / f"exec-{program}.sock").exists():
        assert time.monotonic() < deadline and workbench.poll() is None
        time.sleep(0.1)
    assert sockets(directory) == [f"agent-{program}.sock", f"exec-{program}.sock", f"probe-{program}.sock"]
    os.kill(program, signal.SIGKILL)
    code, stderr = finish(workbench)
    assert code == 3 and "the program was killed by SIGKILL" in stderr
    assert sockets(directory) == []
