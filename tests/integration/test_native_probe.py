"""libworkbench-probe.so preloaded into unmodified processes: each allocator in both preload orders, the socket's
permissions, a signal-triggered dump, the Python client, and a real JVM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from workbench._errors import BadInput
from workbench.toolchain.allocators import resolve_allocator
from workbench.toolchain.probe import ensure_probe, ensure_probe_test_program
from workbench.probes.native_probe import ProbeUnavailable, query, snapshot_from_probe, socket_path

pytestmark = pytest.mark.slow

# Unusual sizes, so the allocator's growth can be matched to these allocations (test_probe.c allocates them).
ODD_SIZE = 7 * 1024 * 1024 + 4093
BLOCKS, BLOCK_SIZE = 1000, 1000 + 7
# mimalloc commits whole segments up front; only a block larger than one shows in what it has committed.
MIMALLOC_SIZE = 48 * 1024 * 1024 + 4093
DUMP_EXTENSION = {"jemalloc": "json", "tcmalloc": "txt", "mimalloc": "txt", "glibc": "xml"}
LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
# (allocator, preload order); glibc has nothing preloaded but the probe, so it has one order.
# "mimalloc" is the workbench's build (MI_STAT=2): its statistics, read in place, give the six fields.
CASES = [(name, order) for name in ("system:jemalloc", "system:tcmalloc", "system:mimalloc", "mimalloc")
         for order in ("probe_first", "allocator_first")]
CASES.append(("glibc", "probe_only"))


@pytest.fixture(scope="module")
def probe() -> Path:
    return ensure_probe(quiet=True)


@pytest.fixture(scope="module")
def test_program() -> Path:
    return ensure_probe_test_program(quiet=True)


def subject_env(preload: list[Path], sockets: Path, dumps: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_PROBE") and k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=":".join(map(str, preload)), WORKBENCH_PROBE_DIR=str(sockets), **extra)
    if dumps is not None:
        env["WORKBENCH_PROBE_DUMP_DIR"] = str(dumps)
    return env


def run_subject(program: Path, env: dict[str, str], *args: str) -> tuple[dict[str, dict[str, Any]], str]:
    """test_probe's steps by label, and its stderr; shown by pytest when an assertion fails."""
    result = subprocess.run([str(program), *args], env=env, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    print(f"$ LD_PRELOAD={env['LD_PRELOAD']} {program} {' '.join(args)}\n--- exit {result.returncode}\n"
          f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[:4000]}")
    assert result.returncode == 0
    return {step["label"]: step for step in map(json.loads, result.stdout.splitlines())}, result.stderr


def check_dump(path: Path, backend: str) -> None:
    text = path.read_text(encoding="utf-8")
    if backend == "jemalloc":
        assert "stats" in json.loads(text)["jemalloc"]
    elif backend == "glibc":
        assert ElementTree.fromstring(text).find("heap") is not None
    elif backend == "tcmalloc":
        assert "Bytes in use by application" in text
    else:
        assert "heap stats" in text


@pytest.mark.parametrize(("name", "order"), CASES)
def test_probe_serves_the_preloaded_allocators_statistics(name: str, order: str, probe: Path, test_program: Path,
                                                          tmp_path: Path) -> None:
    choice = resolve_allocator(name)
    library = choice.library or LIBC
    preload = {"probe_first": [probe, library], "allocator_first": [library, probe], "probe_only": [probe]}[order]
    sockets, dumps = tmp_path / "sockets", tmp_path / "dumps"
    dumps.mkdir()
    size = MIMALLOC_SIZE if name == "system:mimalloc" else ODD_SIZE
    steps, stderr = run_subject(test_program, subject_env(preload, sockets, dumps), "--size", str(size))
    assert stderr == ""
    pid = steps["ping"]["answer"]["pid"]
    before, again = steps["before"]["answer"], steps["again"]["answer"]
    after, freed, blocks = (steps[k]["answer"] for k in ("after_block", "after_free", "after_blocks"))

    for answer in (before, again, after, freed, blocks):
        assert answer["backend"] == choice.expected_backend and answer["pid"] == pid
        assert Path(answer["library"]).resolve() == library.resolve()
        assert set(answer) == {"pid", "version", "library", "t_ns", *asdict(snapshot_from_probe(answer))}
    assert before["t_ns"] < again["t_ns"] < after["t_ns"]
    if name == "glibc":
        assert before["version"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # type: ignore[union-attr]
        assert after["raw"]["arenas"] >= 1 and after["raw"]["hblks"] == before["raw"]["hblks"] + 1
    else:
        assert before["version"]
    if name == "system:mimalloc":
        assert before["version"].startswith("2.")
        assert after["allocated_bytes"] is None and after["resident_bytes"] is None and after["retained_bytes"] is None
        assert after["mapped_bytes"] - before["mapped_bytes"] >= size
        assert after["raw"]["current_commit"] == after["mapped_bytes"]
    else:
        # A stats request allocates nothing the allocator counts: two in a row agree.
        assert again["allocated_bytes"] == before["allocated_bytes"]
        grown = after["allocated_bytes"] - before["allocated_bytes"]
        # jemalloc and tcmalloc round a large request up to a size class, glibc to whole pages (at most a quarter).
        assert size <= grown <= size * 5 // 4
        assert freed["allocated_bytes"] == before["allocated_bytes"]
        grown = blocks["allocated_bytes"] - freed["allocated_bytes"]
        assert BLOCKS * BLOCK_SIZE <= grown <= BLOCKS * BLOCK_SIZE * 5 // 4
        assert snapshot_from_probe(after).allocated_bytes == after["allocated_bytes"]
    if name == "mimalloc":  # the fields the worker's MimallocBackend reads, from the same statistics
        for answer in (before, after, freed, blocks):
            raw = answer["raw"]
            assert answer["allocated_bytes"] == raw["normal_bytes"] + raw["large_bytes"] + raw["huge_bytes"]
            assert answer["active_bytes"] == raw["page_committed_bytes"]
            assert answer["mapped_bytes"] == raw["committed_bytes"]
            assert answer["retained_bytes"] == raw["reserved_bytes"] - raw["committed_bytes"]
            assert answer["metadata_bytes"] is None and answer["resident_bytes"] is None
        assert after["raw"]["large_bytes"] + after["raw"]["huge_bytes"] - before["raw"]["large_bytes"] \
            - before["raw"]["huge_bytes"] >= size

    assert steps["unknown"]["answer"] == {"error": "unknown command"}
    extension = DUMP_EXTENSION[choice.expected_backend or ""]
    signalled = Path(steps["signal_dump"]["path"])
    assert signalled == dumps / f"allocator-dump-{pid}-1.{extension}"
    assert steps["dump"]["answer"] == {"dump": str(dumps / f"allocator-dump-{pid}-2.{extension}")}
    for path in (signalled, dumps / f"allocator-dump-{pid}-2.{extension}"):
        check_dump(path, choice.expected_backend or "")
    assert sorted(p.name for p in dumps.iterdir()) == [f"allocator-dump-{pid}-{n}.{extension}" for n in (1, 2)]
    # The socket directory was made 0700, and the socket is gone once the process has exited.
    assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
    assert list(sockets.iterdir()) == []


def test_dump_goes_to_stderr_without_a_dump_directory(probe: Path, test_program: Path, tmp_path: Path) -> None:
    steps, stderr = run_subject(test_program, subject_env([probe], tmp_path / "sockets"))
    assert steps["dump"]["answer"] == {"dump": "stderr"}
    assert ElementTree.fromstring(stderr).tag == "malloc"  # malloc_info's XML, and nothing else


@pytest.fixture
def long_running_python(probe: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """A Python preloaded with the probe alone (glibc), with SIGUSR2 (given as a number) as its dump signal."""
    sockets, dumps = tmp_path / "sockets", tmp_path / "dumps"
    dumps.mkdir()
    program = ("import os, sys\nprint('ready', flush=True)\n"
               "for line in sys.stdin:\n"
               "    pid = os.fork()\n"
               "    if pid == 0:\n"
               "        sys.exit(0)  # a normal exit(): the probe's destructor runs in the child\n"
               "    os.waitpid(pid, 0)\n"
               "    print('forked', flush=True)\n")
    env = subject_env([probe], sockets, dumps, WORKBENCH_PROBE_SIGNAL=str(int(signal.SIGUSR2)))
    process = subprocess.Popen([sys.executable, "-c", program], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        yield process, sockets, dumps
    finally:
        process.kill()
        process.wait()


def wait_for(path: Path, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_query_answers_from_a_long_running_glibc_process(
        long_running_python: tuple[subprocess.Popen[str], Path, Path]) -> None:
    process, sockets, dumps = long_running_python
    assert query(process.pid, "ping", directory=sockets) == {"pid": process.pid}
    stats = query(process.pid, directory=sockets)
    assert stats["backend"] == "glibc" and Path(stats["library"]).resolve() == LIBC.resolve()
    snapshot = snapshot_from_probe(stats)
    assert snapshot.allocated_bytes == stats["raw"]["uordblks"] + stats["raw"]["hblkhd"] > 0
    assert snapshot.active_bytes is None and snapshot.raw["arenas"] >= 1
    assert query(process.pid, "bogus", directory=sockets) == {"error": "unknown command"}
    assert query(process.pid, "dump", directory=sockets) == {"dump": str(dumps / f"allocator-dump-{process.pid}-1.xml")}

    os.kill(process.pid, signal.SIGUSR2)  # the configured dump signal: dumps, does not kill
    wait_for(dumps / f"allocator-dump-{process.pid}-2.xml")
    assert ElementTree.parse(dumps / f"allocator-dump-{process.pid}-2.xml").getroot().tag == "malloc"

    # A forked child's exit leaves its parent's socket alone.
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("fork\n")
    process.stdin.flush()
    assert process.stdout.readline() == "forked\n"
    assert query(process.pid, "ping", directory=sockets) == {"pid": process.pid}

    process.stdin.close()
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None and process.stderr.read() == ""
    assert not socket_path(process.pid, sockets).exists()
    with pytest.raises(ProbeUnavailable, match="does not exist"):
        query(process.pid, directory=sockets)


def test_query_without_a_probe_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ProbeUnavailable):
        query(os.getpid(), directory=tmp_path)


# Run as another user (system Python: the checkout and its virtualenv may be closed to that user).
_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as error:
    print(json.dumps({"connected": False, "errno": error.errno}))
    sys.exit(0)
data = b""
try:
    s.sendall(b"stats\\n")
    while chunk := s.recv(65536):
        data += chunk
except OSError:
    pass  # closed by the probe: EPIPE or ECONNRESET, depending on timing
print(json.dumps({"connected": True, "data": data.decode()}))
"""
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def connect_as(user: list[str], path: Path) -> dict[str, Any]:
    out = subprocess.run([*user, "/usr/bin/python3", "-c", _CLIENT, str(path)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_socket_refuses_another_user(probe: Path, test_program: Path) -> None:
    # Under /tmp itself: pytest's tmp_path is inside a 0700 directory that nobody could not even traverse.
    base = Path(tempfile.mkdtemp(prefix="workbench-probe-test-", dir="/tmp"))
    base.chmod(0o755)
    sockets = base / "sockets"
    process = subprocess.Popen([str(test_program), "--serve", "30"], env=subject_env([probe], sockets),
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and json.loads(process.stdout.readline())["label"] == "ready"
        path = socket_path(process.pid, sockets)
        assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert connect_as(AS_NOBODY, path) == {"connected": False, "errno": 13}  # EACCES: the directory is 0700

        # With the file system's guard removed (a hard link in an open directory, the socket made 0666), the
        # probe's own check of the peer's uid still closes the connection without a byte.
        alias = base / "alias"
        alias.mkdir(mode=0o755)
        os.link(path, alias / "probe.sock")
        path.chmod(0o666)
        assert connect_as(AS_NOBODY, alias / "probe.sock") == {"connected": True, "data": ""}
        mine = json.loads(connect_as([], alias / "probe.sock")["data"])
        assert mine["pid"] == process.pid and mine["backend"] == "glibc"
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(base, ignore_errors=True)


def _symlink(directory: Path) -> Path:
    target = directory / "real"
    target.mkdir(mode=0o700)
    (directory / "link").symlink_to(target)
    return directory / "link"


def _open_to_all(directory: Path) -> Path:
    (directory / "open").mkdir()
    (directory / "open").chmod(0o777)
    return directory / "open"


def _owned_by_nobody(directory: Path) -> Path:
    (directory / "theirs").mkdir(mode=0o700)
    os.chown(directory / "theirs", 65534, 65534)
    return directory / "theirs"


@pytest.mark.parametrize(("make", "problem"), [(_symlink, "is a symlink"), (_open_to_all, "group or others"),
                                               (_owned_by_nobody, "not owned by this user")])
def test_unsafe_socket_directory_disables_the_probe_and_the_host_runs_on(make: Any, problem: str, probe: Path,
                                                                         test_program: Path, tmp_path: Path) -> None:
    sockets = make(tmp_path)
    result = subprocess.run([str(test_program), "--serve", "0.2"], env=subject_env([probe], sockets),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and json.loads(result.stdout)["label"] == "ready"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench-probe: refusing socket directory") and problem in lines[0]
    assert list(sockets.resolve().iterdir()) == []


def test_probe_build_is_cached_and_needs_gcc(probe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcc, no make: a cached build must not need them
    assert ensure_probe() == probe and ensure_probe_test_program() == probe.parent / "test_probe"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(BadInput, match="apt-get install gcc"):
        ensure_probe()


def test_probe_build_needs_a_jdks_headers_for_the_native_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jre = tmp_path / "jre"  # a Java home without include/ (a JRE)
    (jre / "lib" / "server").mkdir(parents=True)
    (jre / "lib" / "server" / "libjvm.so").write_bytes(b"")
    (jre / "release").write_text('JAVA_VERSION="17.0.15"\n')
    monkeypatch.setenv("JAVA_HOME", str(jre))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(BadInput, match=f"needs a JDK's C headers: {jre}/include/jni.h is missing"):
        ensure_probe()
    cache = tmp_path / "empty-cache" / "workbench" / "probe"
    assert [p.name for p in cache.iterdir() if p.name != "probe.lock"] == []  # nothing built, nothing half-built


_HOLD = """
public class Hold {
    public static void main(String[] args) throws Exception {
        byte[][] keep = new byte[64][];
        for (int i = 0; i < keep.length; i++) keep[i] = new byte[1 << 16];
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(Long.parseLong(args[0]));
    }
}
"""


@pytest.mark.jvm
@pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK")
def test_probe_answers_inside_a_jvm(probe: Path, tmp_path: Path) -> None:
    (tmp_path / "Hold.java").write_text(_HOLD)
    subprocess.run(["javac", "-d", str(tmp_path), str(tmp_path / "Hold.java")], check=True, timeout=120)
    jemalloc = resolve_allocator("system:jemalloc").library
    assert jemalloc is not None
    sockets, dumps = tmp_path / "sockets", tmp_path / "dumps"
    dumps.mkdir()
    process = subprocess.Popen(
        ["java", "-XX:NativeMemoryTracking=summary", "-cp", str(tmp_path), "Hold", "4000"],
        env=subject_env([jemalloc, probe], sockets, dumps), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        stats = query(process.pid, directory=sockets, timeout=5.0)
        assert stats["backend"] == "jemalloc" and stats["pid"] == process.pid
        assert Path(stats["library"]).resolve() == jemalloc.resolve()
        assert stats["allocated_bytes"] > 1024 * 1024
        os.kill(process.pid, signal.SIGUSR1)  # HotSpot leaves SIGUSR1 to the probe
        wait_for(dumps / f"allocator-dump-{process.pid}-1.json")
        check_dump(dumps / f"allocator-dump-{process.pid}-1.json", "jemalloc")
        assert process.wait(timeout=60) == 0
        assert process.stderr is not None and "workbench-probe" not in process.stderr.read()
        assert not socket_path(process.pid, sockets).exists()
    finally:
        process.kill()
        process.wait()


_LATE_LOAD = """
import ctypes, os, signal, sys
caught = []
signal.signal(signal.SIGUSR1, lambda *_: caught.append(1))
ctypes.CDLL(sys.argv[1])  # the probe's constructor finds the host's handler already there
os.kill(os.getpid(), signal.SIGUSR1)
print(len(caught))
"""


def test_probe_leaves_a_signal_the_host_already_handles(probe: Path, tmp_path: Path) -> None:
    env = subject_env([], tmp_path / "sockets", tmp_path)
    del env["LD_PRELOAD"]
    result = subprocess.run([sys.executable, "-c", _LATE_LOAD, str(probe)], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout == "1\n"  # the host's handler ran, the process lives
    assert result.stderr.splitlines() == [
        f"workbench-probe: signal {int(signal.SIGUSR1)} already has a handler; leaving it (the socket's dump command "
        "still works)"]
    assert not list(tmp_path.glob("allocator-dump-*"))
