"""The Java agent in the kernels jar, loaded into a plain `java` running the Kotlin reference program."""

from __future__ import annotations

import os
import selectors
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import JDK17, JDK25
from workbench.toolchain.allocators import resolve_allocator
from workbench.toolchain.maven import kernels_classpath
from workbench.probes.jvm_agent import AgentUnavailable, agent_socket, nmt_of, query_agent
from workbench.probes.nmt import parse_summary

pytestmark = [pytest.mark.slow, pytest.mark.jvm]

MIB = 1024 * 1024
NETTY_CHUNK = 4 * MIB
MAIN_CLASS = "workbench.example.NativeMemoryExampleKt"
ALLOCATED_LINE = b"Allocated: 512 KB"
# The machine's default JDK is 17; prefer its fixed path so a JAVA_HOME or PATH change does not move the test.
JDK17_JAVA = JDK17 / "bin" / "java"
JAVA17 = str(JDK17_JAVA) if JDK17_JAVA.exists() else shutil.which("java") or "java"
JAVA25 = str(JDK25 / "bin" / "java")
ARROW_FLAGS = ["--add-opens=java.base/java.nio=ALL-UNNAMED", "-Darrow.allocation.manager.type=Netty"]
JDK25_FLAGS = ["--sun-misc-unsafe-memory-access=allow", "-Dio.netty.tryReflectionSetAccessible=true"]
STARTUP_TIMEOUT_S = 60


@dataclass
class Example:
    process: subprocess.Popen[bytes]
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_allocated(self) -> None:
        """Reads stdout until the program says its vector is allocated (it then holds it for its sleep)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while ALLOCATED_LINE not in self.stdout:
                left = deadline - time.monotonic()
                assert left > 0, f"no {ALLOCATED_LINE!r} within {STARTUP_TIMEOUT_S}s; stdout so far: {self.stdout!r}"
                if selector.select(left):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    assert chunk, f"the program ended before allocating; stdout: {self.stdout!r}"
                    self.stdout += chunk

    def finish(self) -> int:
        rest_out, rest_err = self.process.communicate(timeout=STARTUP_TIMEOUT_S)
        self.stdout += rest_out
        self.stderr += rest_err
        print(f"--- exit {self.process.returncode}\n--- stdout\n{self.stdout.decode()}\n--- stderr\n{self.stderr.decode()}")
        return self.process.returncode


@pytest.fixture(scope="module")
def jar_and_classpath() -> tuple[str, str]:
    classpath = kernels_classpath()
    return classpath[0], os.pathsep.join(classpath)


@pytest.fixture(scope="module")
def jemalloc() -> Path:
    library = resolve_allocator("system:jemalloc").library
    assert library is not None
    return library


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "probe"
    directory.mkdir(mode=0o700)
    return directory


@contextmanager
def example(java: str, jar_and_classpath: tuple[str, str], *, probe_dir: Path, jemalloc: Path | None = None,
            jvm_flags: tuple[str, ...] = (), agent_argument: str = "",
            sleep_ms: int = 4000) -> Iterator[Example]:
    """The Kotlin program under `java -javaagent:<jar>` with WORKBENCH_PROBE_DIR set; killed if a test fails."""
    jar, classpath = jar_and_classpath
    agent = f"-javaagent:{jar}" + (f"={agent_argument}" if agent_argument else "")
    env = {**os.environ, "WORKBENCH_PROBE_DIR": str(probe_dir), "LD_PRELOAD": str(jemalloc) if jemalloc else ""}
    env.pop("NATIVE_MEMORY_EXAMPLE_SLEEP_MS", None)
    command = [java, *jvm_flags, agent, *ARROW_FLAGS, "-cp", classpath, MAIN_CLASS, str(sleep_ms)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               env=env)
    run = Example(process)
    try:
        yield run
    finally:
        if process.poll() is None:  # the test failed mid-way: leave no JVM behind
            process.kill()
            process.communicate()


def query_when_listening(pid: int, directory: Path | None = None) -> dict[str, Any]:
    """The agent binds on its own thread; give it a moment after the program is up."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return query_agent(pid, directory=directory)
        except AgentUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_agent_reports_nmt_heap_and_buffer_pools_of_the_kotlin_program_under_jemalloc(
        jar_and_classpath: tuple[str, str], jemalloc: Path, probe_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The client finds the socket the way the agent chose it: through WORKBENCH_PROBE_DIR.
    monkeypatch.setenv("WORKBENCH_PROBE_DIR", str(probe_dir))
    with example(JAVA17, jar_and_classpath, probe_dir=probe_dir, jemalloc=jemalloc,
                 jvm_flags=("-XX:NativeMemoryTracking=summary",)) as run:
        run.wait_for_allocated()
        stats = query_when_listening(run.pid)
        socket_file = agent_socket(run.pid)
        assert socket_file == probe_dir / f"agent-{run.pid}.sock"
        assert stat.S_ISSOCK(socket_file.stat().st_mode) and stat.S_IMODE(socket_file.stat().st_mode) == 0o600
        assert query_agent(run.pid, "ping") == {"pid": run.pid}
        assert query_agent(run.pid, "gc now") == {"error": "unknown command"}
        maps = Path(f"/proc/{run.pid}/maps").read_text()
        assert str(jemalloc.resolve()) in maps or str(jemalloc) in maps
        exit_code = run.finish()

    assert stats["pid"] == run.pid and stats["t_ms"] > 0
    assert stats["java_version"].startswith("17") and "OpenJDK" in stats["vm_name"]
    nmt = nmt_of(stats)
    assert nmt is not None and nmt == parse_summary(stats["nmt"])
    # Netty's pooled chunk, malloc'd through Unsafe while the vector is held: far more than Arrow's 512 KiB.
    other = nmt.categories["Other"]
    assert NETTY_CHUNK <= other.committed_bytes < NETTY_CHUNK + 1 * MIB
    assert nmt.categories["Java Heap"].committed_bytes == stats["heap"]["committed_bytes"]
    heap = stats["heap"]
    assert 0 < heap["used_bytes"] <= heap["committed_bytes"] <= heap["max_bytes"]
    assert 0 < stats["non_heap"]["used_bytes"] <= stats["non_heap"]["committed_bytes"]
    pools = stats["buffer_pools"]
    assert {"direct", "mapped"} <= pools.keys()
    assert set(pools["direct"]) == {"count", "memory_used_bytes", "total_capacity_bytes"}
    # The chunk is a direct ByteBuffer to the JDK as well.
    assert NETTY_CHUNK <= pools["direct"]["total_capacity_bytes"] < NETTY_CHUNK + 1 * MIB
    assert pools["mapped"]["count"] == 0
    assert stats["gc"] and all(g["name"] and g["count"] >= 0 and g["time_ms"] >= 0 for g in stats["gc"])
    assert stats["threads"] >= 2  # main and the agent's own

    assert exit_code == 0
    assert run.stdout.decode().splitlines() == ["Allocated: 512 KB", "closed"]
    assert b"workbench-agent" not in run.stderr
    assert not socket_file.exists()
    with pytest.raises(AgentUnavailable):
        query_agent(run.pid, "ping")


@pytest.mark.skipif(not JDK25.exists(), reason=f"JDK 25 is not installed at {JDK25}")
def test_agent_nmt_text_of_jdk25_parses(jar_and_classpath: tuple[str, str], jemalloc: Path,
                                        probe_dir: Path) -> None:
    with example(JAVA25, jar_and_classpath, probe_dir=probe_dir, jemalloc=jemalloc,
                 jvm_flags=("-XX:NativeMemoryTracking=summary", *JDK25_FLAGS)) as run:
        run.wait_for_allocated()
        stats = query_when_listening(run.pid, directory=probe_dir)
        exit_code = run.finish()

    assert stats["java_version"].startswith("25")
    nmt = nmt_of(stats)
    assert nmt is not None
    assert NETTY_CHUNK <= nmt.categories["Other"].committed_bytes < NETTY_CHUNK + 1 * MIB
    assert nmt.malloc_total_bytes >= NETTY_CHUNK
    assert exit_code == 0 and run.stdout.decode().splitlines()[-1] == "closed"
    assert not agent_socket(run.pid, probe_dir).exists()


@pytest.mark.parametrize("jdk", ["17", "25"])
def test_agent_reads_the_management_beans_without_loading_the_platform_components(
        jdk: str, jar_and_classpath: tuple[str, str], probe_dir: Path, tmp_path: Path) -> None:
    # ManagementFactory's own lookup loads every platform component and its providers first (80 ms of the start
    # snapshot that `workbench exec` holds the program for, measured on JDK 17); the agent takes the same beans from
    # sun.management.ManagementFactoryHelper, opened to it through Instrumentation.
    if jdk == "25" and not JDK25.exists():
        pytest.skip(f"JDK 25 is not installed at {JDK25}")
    java, extra = (JAVA17, ()) if jdk == "17" else (JAVA25, JDK25_FLAGS)
    classes = tmp_path / "classes.txt"
    with example(java, jar_and_classpath, probe_dir=probe_dir, sleep_ms=2000,
                 jvm_flags=("-XX:NativeMemoryTracking=summary", f"-Xlog:class+load:file={classes}", *extra)) as run:
        run.wait_for_allocated()
        stats = query_when_listening(run.pid, directory=probe_dir)
        exit_code = run.finish()

    loaded = classes.read_text()
    assert "sun.management.ManagementFactoryHelper " in loaded
    assert "java.lang.management.PlatformComponent" not in loaded
    collectors = ["G1 Young Generation", "G1 Old Generation"] + (["G1 Concurrent GC"] if jdk == "25" else [])
    assert [gc["name"] for gc in stats["gc"]] == collectors
    assert {"direct", "mapped"} <= stats["buffer_pools"].keys()
    if jdk == "17":  # Netty's chunk is a direct ByteBuffer there (on 25 Netty allocates it without one)
        assert NETTY_CHUNK <= stats["buffer_pools"]["direct"]["total_capacity_bytes"] < NETTY_CHUNK + 1 * MIB
    assert 0 < stats["heap"]["used_bytes"] <= stats["heap"]["committed_bytes"]
    assert stats["threads"] >= 2 and stats["t_ms"] > 0
    assert exit_code == 0 and b"workbench-agent" not in run.stderr


def test_agent_without_nmt_answers_null_and_says_why_at_the_dir_it_was_given(
        jar_and_classpath: tuple[str, str], probe_dir: Path, tmp_path: Path) -> None:
    # The agent argument wins over WORKBENCH_PROBE_DIR (which points elsewhere here).
    given = tmp_path / "given"
    with example(JAVA17, jar_and_classpath, probe_dir=probe_dir, agent_argument=f"dir={given}", sleep_ms=2000) as run:
        run.wait_for_allocated()
        stats = query_when_listening(run.pid, directory=given)
        assert stat.S_IMODE(given.stat().st_mode) == 0o700
        assert list(probe_dir.iterdir()) == []
        exit_code = run.finish()

    assert stats["nmt"] is None and nmt_of(stats) is None
    assert "Native memory tracking is not enabled" in stats["nmt_error"]
    assert stats["heap"]["used_bytes"] > 0
    assert exit_code == 0 and b"workbench-agent" not in run.stderr
    assert list(given.iterdir()) == []


def test_agent_refuses_a_world_writable_probe_dir_and_the_program_runs_on(
        jar_and_classpath: tuple[str, str], probe_dir: Path) -> None:
    probe_dir.chmod(0o777)
    with example(JAVA17, jar_and_classpath, probe_dir=probe_dir, sleep_ms=1000) as run:
        run.wait_for_allocated()
        exit_code = run.finish()

    assert exit_code == 0
    assert run.stdout.decode().splitlines() == ["Allocated: 512 KB", "closed"]
    agent_lines = [line for line in run.stderr.decode().splitlines() if line.startswith("workbench-agent:")]
    assert agent_lines == [f"workbench-agent: refusing {probe_dir}: group/other can access it (rwxrwxrwx); "
                           "it must be mode 0700"]
    assert list(probe_dir.iterdir()) == []
    with pytest.raises(AgentUnavailable):
        query_agent(run.pid, directory=probe_dir)


@pytest.mark.parametrize("jar", ["missing", "without the agent"])
def test_the_native_agent_that_cannot_start_the_java_agent_says_so_once_and_the_program_runs_on(
        jar: str, tmp_path: Path) -> None:
    """`exec`'s native agent (libworkbench-jvmagent.so) with no jar property, or a jar that has no NativeStart: one
    `workbench-agent:` line, the program's own output and exit code, and no socket."""
    from workbench.toolchain.probe import ensure_jvm_agent

    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o700)
    other_jar = tmp_path / "other.jar"
    other_jar.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    options = [] if jar == "missing" else [f"-Dworkbench.agent.jar={other_jar}"]
    result = subprocess.run([JAVA17, f"-agentpath:{ensure_jvm_agent(quiet=True)}=dir={sockets}",
                             "-Dworkbench.agent.hold=30000", *options, "-version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    agent_lines = [line for line in lines if line.startswith("workbench-agent:")]
    expected = ("workbench-agent: not started: -Dworkbench.agent.jar=<the project jar> is missing" if jar == "missing"
                else "workbench-agent: not started: workbench.agent.NativeStart could not be loaded from the jar "
                     "(a Java exception)")
    assert agent_lines == [expected]
    assert any(line.startswith("openjdk version") for line in lines)  # -version's own output, after the agent's line
    assert list(sockets.iterdir()) == []


@pytest.mark.parametrize("problem", ["world-writable", "symlink", "unknown argument"])
def test_the_native_agent_refuses_its_socket_directory_once_and_does_not_hold_the_program(
        problem: str, jar_and_classpath: tuple[str, str], tmp_path: Path) -> None:
    """The native agent checks the directory as the Java agent's ProbeDirectory does (and says so in the same
    words); a server that cannot run holds nothing, even with -Dworkbench.agent.hold."""
    from workbench.toolchain.probe import ensure_jvm_agent

    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o700)
    argument = f"dir={sockets}"
    if problem == "world-writable":
        sockets.chmod(0o777)
        expected = f"workbench-agent: refusing {sockets}: group/other can access it (rwxrwxrwx); it must be mode 0700"
    elif problem == "symlink":
        link = tmp_path / "link"
        link.symlink_to(sockets)
        argument, expected = f"dir={link}", f"workbench-agent: refusing {link}: it is a symlink"
    else:
        argument = "bogus"
        expected = "workbench-agent: not started: unknown agent argument 'bogus'; expected dir=<path>"
    result = subprocess.run([JAVA17, f"-agentpath:{ensure_jvm_agent(quiet=True)}={argument}",
                             f"-Dworkbench.agent.jar={jar_and_classpath[0]}", "-Dworkbench.agent.hold=600000", "-version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("workbench-agent:")] == [expected]
    assert any(line.startswith("openjdk version") for line in lines)
    assert list(sockets.iterdir()) == []
