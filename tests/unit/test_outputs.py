"""Outputs and leftovers: run directories claimed atomically, writes whole or not at all on real failing file
systems (a full and a read-only tmpfs, names too long), stale temporaries and sockets reclaimed."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.unit.reports import jemalloc_report
from workbench._errors import BadInput, RunFailed
from workbench._files import WriteFailed, appending, creatable_problem, is_partial, write_atomically, write_unnamed
from workbench.cli.options import json_target
from workbench.probes._socket import reclaim_stale
from workbench.protocol import layout
from workbench.report.model import report_to_json
from workbench.report.timeline import write_timeline
from workbench.run.run_dir import RunDir

LONG_NAME = "x" * 300  # over NAME_MAX (255) on every Linux file system


def _claim_when_released(barrier: multiprocessing.synchronize.Barrier, out: str,
                         results: multiprocessing.Queue[str]) -> None:
    barrier.wait()
    try:
        RunDir.claim("unused", Path(out))
        results.put("claimed")
    except BadInput as refused:
        results.put(refused.message)


@pytest.mark.parametrize("exists", [False, True], ids=["new", "existing-empty"])
def test_runs_started_together_with_one_out_never_share_it(tmp_path: Path, exists: bool) -> None:
    context = multiprocessing.get_context("fork")
    for repetition in range(60):
        out = tmp_path / f"run-{repetition}"
        if exists:
            out.mkdir()
        barrier = context.Barrier(3)
        results: multiprocessing.Queue[str] = context.Queue()
        claimers = [context.Process(target=_claim_when_released, args=(barrier, str(out), results))
                    for _ in range(3)]
        for claimer in claimers:
            claimer.start()
        outcomes = sorted(results.get(timeout=30) for _ in claimers)
        for claimer in claimers:
            claimer.join(timeout=30)
        assert outcomes.count("claimed") == 1, (repetition, outcomes)
        assert all(o.startswith(f"--out {out}: ") for o in outcomes if o != "claimed"), outcomes
        assert [p.name for p in out.iterdir()] == [layout.CLAIM]


def test_a_directory_claimed_by_another_run_is_refused(tmp_path: Path) -> None:
    RunDir.claim("unused", tmp_path / "run")
    with pytest.raises(BadInput, match=r"^--out .*/run: exists and is not an empty directory$"):
        RunDir.claim("unused", tmp_path / "run")


def test_names_too_long_are_bad_input_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"^--out .*x{300}: File name too long$"):
        RunDir.claim("unused", tmp_path / LONG_NAME)
    with pytest.raises(BadInput, match=r"^--out .*x{300}/run: File name too long$"):
        RunDir.claim("unused", tmp_path / LONG_NAME / "run")
    with pytest.raises(BadInput, match=r"^--json .*x{300}: File name too long$"):
        json_target(tmp_path / LONG_NAME)
    with pytest.raises(WriteFailed, match=r"^cannot write .*x{300}: File name too long$"):
        write_atomically(tmp_path / LONG_NAME, "{}")
    assert list(tmp_path.iterdir()) == []


def test_a_name_near_the_limit_is_written_through_a_shorter_temporary(tmp_path: Path) -> None:
    target = tmp_path / ("y" * 250 + ".json")
    write_atomically(target, "{}")
    assert [p.name for p in tmp_path.iterdir()] == [target.name] and target.read_text() == "{}"


def test_json_into_proc_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"^--json /proc/foo/x: directory /proc/foo does not exist$"):
        json_target(Path("/proc/foo/x"))
    assert creatable_problem(Path("/proc/self/report.json")) is not None


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (root only: CI runs as root), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root); ENOSPC and EROFS cannot be made otherwise")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(mount: Path, leave_bytes: int = 0) -> None:
    """Fill the file system but ``leave_bytes`` (rounded to its blocks)."""
    info = os.statvfs(mount)
    (mount / "filler").write_bytes(b"\0" * max(info.f_bavail * info.f_bsize - leave_bytes, 0))


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temporary(small_tmpfs: Path) -> None:
    target = small_tmpfs / "report.json"
    write_atomically(target, '{"old": true}')
    fill(small_tmpfs, leave_bytes=8192)
    with pytest.raises(WriteFailed) as failed:
        write_atomically(target, "x" * 100_000)
    assert failed.value.message == f"cannot write {target}: No space left on device"
    assert failed.value.errno == errno.ENOSPC and failed.value.exit_code == 3
    assert target.read_text() == '{"old": true}'
    assert entries(small_tmpfs) == ["filler", "report.json"]


def _writes(data: bytes) -> Callable[[int], None]:
    def write(fd: int) -> None:  # as the worker writes: until all is written or the disk refuses
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return write


def test_an_unnamed_write_appears_whole_replaces_and_leaves_no_name_behind(tmp_path: Path) -> None:
    target = tmp_path / "smaps" / "baseline.txt"
    target.parent.mkdir()
    seen: list[list[str]] = []

    def write(fd: int) -> None:
        os.write(fd, b"first")
        seen.append(entries(target.parent))  # while it is written, the directory shows nothing
    write_unnamed(target, write)
    assert seen == [[]] and target.read_bytes() == b"first" and entries(target.parent) == ["baseline.txt"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask() and target.stat().st_nlink == 1
    write_unnamed(target, _writes(b"second"))  # an existing file: replaced, through a temporary name
    assert target.read_bytes() == b"second" and entries(target.parent) == ["baseline.txt"]

    def failing(fd: int) -> None:
        os.write(fd, b"half")
        raise RuntimeError("the reader failed")
    with pytest.raises(RuntimeError, match="the reader failed"):
        write_unnamed(tmp_path / "smaps" / "held.txt", failing)
    assert entries(target.parent) == ["baseline.txt"]


def test_an_unnamed_write_on_a_full_disk_is_write_failed_and_leaves_nothing(small_tmpfs: Path) -> None:
    target = small_tmpfs / "nmt.txt"
    write_unnamed(target, _writes(b"old"))
    fill(small_tmpfs, leave_bytes=8192)
    with pytest.raises(WriteFailed) as failed:
        write_unnamed(small_tmpfs / "held.txt", _writes(b"x" * 100_000))
    assert failed.value.message == f"cannot write {small_tmpfs / 'held.txt'}: No space left on device"
    assert entries(small_tmpfs) == ["filler", "nmt.txt"] and target.read_bytes() == b"old"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_appended_lines_that_do_not_fit_are_cut_off_whole(small_tmpfs: Path) -> None:
    fill(small_tmpfs, leave_bytes=8192)
    path = small_tmpfs / layout.SAMPLES
    line = json.dumps({"t_ms": 1.5, "padding": "p" * 300})
    written = 0
    with pytest.raises(WriteFailed, match=f"^cannot write {path}: No space left on device$"), appending(path) as out:
        while written < 1000:
            out.write_line(line)
            written += 1
    assert 0 < written < 1000
    assert path.read_text() == (line + "\n") * written


def test_the_timeline_on_a_full_disk_fails_naming_it_with_the_system_reason(small_tmpfs: Path, tmp_path: Path) -> None:
    samples = tmp_path / layout.SAMPLES
    samples.write_text("".join(json.dumps({"t_ms": float(i), "step": 0, "cost_us": 1.0}) + "\n" for i in range(5000)))
    fill(small_tmpfs, leave_bytes=4096)
    with pytest.raises(WriteFailed) as failed:
        write_timeline(samples, small_tmpfs / layout.TIMELINE)
    assert failed.value.message == f"cannot write {small_tmpfs / layout.TIMELINE}: No space left on device"
    assert entries(small_tmpfs) == ["filler"]


def test_finishing_on_a_full_disk_keeps_the_report_that_fitted(small_tmpfs: Path) -> None:
    report = jemalloc_report()
    run_dir = RunDir.claim("unused", small_tmpfs / "run")
    text = report_to_json(report)
    fill(small_tmpfs, leave_bytes=len(text.encode()) + 12288)  # report.json and an empty timeline fit, not the HTML
    with pytest.raises(RunFailed) as failed:
        run_dir.finish(report, html=True)
    assert failed.value.message == f"cannot write {run_dir.path / layout.REPORT_HTML}: No space left on device"
    assert (run_dir.path / layout.REPORT_JSON).read_text() == text
    assert entries(run_dir.path) == [layout.CLAIM, layout.REPORT_JSON, layout.TIMELINE]


def test_a_read_only_file_system(small_tmpfs: Path) -> None:
    target = small_tmpfs / "report.json"
    write_atomically(target, "{}")
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(WriteFailed, match=f"^cannot write {target}: Read-only file system$"):
        write_atomically(target, '{"new": 1}')
    with pytest.raises(WriteFailed, match=f"^cannot write {small_tmpfs / 'samples.jsonl'}: Read-only file system$"):
        with appending(small_tmpfs / "samples.jsonl"):
            pass
    with pytest.raises(BadInput, match=r"^--out .*/run: cannot create the run directory: Read-only file system$"):
        RunDir.claim("unused", small_tmpfs / "run")
    with pytest.raises(BadInput, match=r"^--json .*/other.json: "):
        json_target(small_tmpfs / "other.json")
    assert creatable_problem(small_tmpfs / "other.json") == "Read-only file system"
    assert entries(small_tmpfs) == ["report.json"] and target.read_text() == "{}"


def test_an_empty_directory_on_a_read_only_file_system_cannot_be_claimed(small_tmpfs: Path) -> None:
    (small_tmpfs / "run").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(BadInput, match=r"^--out .*/run: cannot claim the run directory: Read-only file system$"):
        RunDir.claim("unused", small_tmpfs / "run")


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    stale = tmp_path / f".report.json.{dead_pid()}-abcdefgh.partial"
    live = tmp_path / f".report.json.{os.getppid()}-abcdefgh.partial"  # a writer still running: left alone
    other = tmp_path / f".other.json.{dead_pid()}-abcdefgh.partial"  # another target's: left for its next write
    for path in (stale, live, other):
        path.write_text("half")
    assert all(is_partial(p.name) for p in (stale, live, other)) and not is_partial("report.json")
    write_atomically(target, "{}")
    assert entries(tmp_path) == sorted([live.name, other.name, "report.json"])


def listening_socket(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    return server


def test_sockets_of_processes_that_are_gone_are_reclaimed(tmp_path: Path) -> None:
    gone, alive = dead_pid(), os.getpid()
    servers = [listening_socket(tmp_path / f"{kind}-{pid}.sock")
               for kind in ("probe", "agent", "exec") for pid in (gone, alive)]
    (tmp_path / f"probe-{dead_pid()}.sock.txt").write_text("not a socket name")
    (tmp_path / f"agent-{dead_pid()}.sock").write_text("not a socket")
    (tmp_path / f"other-{gone}.sock").write_text("not ours")
    kept = entries(tmp_path)
    try:
        assert sorted(p.name for p in reclaim_stale(tmp_path)) == sorted(f"{k}-{gone}.sock" for k in ("probe", "agent", "exec"))
        assert entries(tmp_path) == sorted(set(kept) - {f"{k}-{gone}.sock" for k in ("probe", "agent", "exec")})
    finally:
        for server in servers:
            server.close()


def test_reclaiming_one_pid_leaves_the_others(tmp_path: Path) -> None:
    first, second = dead_pid(), dead_pid()
    servers = [listening_socket(tmp_path / f"probe-{pid}.sock") for pid in (first, second)]
    try:
        assert [p.name for p in reclaim_stale(tmp_path, first)] == [f"probe-{first}.sock"]
        assert entries(tmp_path) == [f"probe-{second}.sock"]
    finally:
        for server in servers:
            server.close()
