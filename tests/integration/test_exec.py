"""Unmodified JVM programs: `workbench exec -- java ...` with the probe and the agent, `snapshot`, `attach`."""

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

from tests.integration.conftest import JDK25, run_workbench
from workbench.probes.native_probe import SnapshotLibrary
from workbench.toolchain.maven import kernels_classpath
from workbench.toolchain.probe import ensure_probe

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
MIB = 1024 * 1024
MAIN = "workbench.example.NativeMemoryExampleKt"


def reference_command(sleep_ms: int) -> list[str]:
    """The Kotlin reference program as a user runs it: plain java, Arrow's options, the Netty manager."""
    return ["java", "--add-opens=java.base/java.nio=ALL-UNNAMED", "-Darrow.allocation.manager.type=Netty",
            "-cp", ":".join(kernels_classpath()), MAIN, str(sleep_ms)]


def pid_of(marker: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and b"-Dworkbench.agent.jar=" in cmdline:
                return int(entry.name)
    return None


def start_exec(tmp_path: Path, allocator: str, sleep_ms: int) -> tuple[subprocess.Popen[str], Path]:
    out = tmp_path / f"run-{allocator}"
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "exec", "--allocator", allocator, "--out", str(out), "--",
         *reference_command(sleep_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    return process, out


def wait_for_line(process: subprocess.Popen[str], text: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed")


def run_reference(tmp_path: Path, allocator: str) -> tuple[dict[str, Any], str, Path]:
    process, out = start_exec(tmp_path, allocator, 3000)
    wait_for_line(process, "Allocated: 512 KB")
    time.sleep(0.5)
    pid = pid_of(str(out))
    assert pid is not None
    snap = run_workbench("snapshot", str(pid), "--label", "held")
    assert snap.returncode == 0, snap.stderr
    rest, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert rest.strip() == "closed"  # the program's own stdout, unchanged
    return json.loads((out / "report.json").read_text()), stderr, out


def test_exec_reference_program_under_jemalloc_shows_the_netty_chunk(tmp_path: Path) -> None:
    report, stderr, out = run_reference(tmp_path, "jemalloc")
    assert report["program"]["exit_code"] == 0
    assert report["program"]["sources"] == {"allocator": "probe", "jvm": "agent"}
    labels = [s["label"] for s in report["snapshots"]]
    assert labels == ["start", "held", "exit"]  # the agent holds the JVM's exit until `exit` is taken
    held = next(s for s in report["snapshots"] if s["label"] == "held")
    assert held["arrow"] is None  # nothing in the program reports Arrow's accounting
    assert NETTY <= held["deltas"]["nmt.categories.Other.committed_bytes"] < NETTY + 512 * 1024
    assert NETTY <= held["deltas"]["allocator.allocated_bytes"] < 64 * MIB
    assert held["deltas"]["process.anon_rss_bytes"] > NETTY
    assert held["allocator"]["backend"] == "jemalloc" and report["allocator"]["backend"] == "jemalloc"
    assert held["jvm_runtime"]["buffer_pools"]["direct"]["total_capacity_bytes"] >= NETTY
    assert report["allocator"]["detected_library"].endswith("libjemalloc.so.2")
    assert "-XX:NativeMemoryTracking=summary" in report["jvm"]["options"]
    assert len((out / "samples.jsonl").read_text().splitlines()) >= 10
    assert (out / "report.html").is_file() and "workbench: run directory" in stderr
    # The program's mappings were read by the probe's C reader (where the kernel has PAGEMAP_SCAN, as it reads this
    # process's: the maps lines with their figures), and each raw file is the read its figures came from, exactly.
    scan = SnapshotLibrary(ensure_probe()).read_process().source == "pagemap-scan"
    for snapshot in report["snapshots"]:
        raw = (out / "smaps" / f"{snapshot['label']}.txt").read_text()
        assert snapshot["process"]["source"] == ("pagemap-scan" if scan else "smaps")
        assert raw.startswith("# workbench: /proc/PID/maps with each mapping's Rss and Anonymous from PAGEMAP_SCAN") \
            == scan
        rss = sum(int(line.split()[1]) * 1024 for line in raw.splitlines() if line.startswith("Rss:"))
        assert rss == snapshot["process"]["rss_bytes"] > 0


NETTY = 4 * MIB


def test_exec_under_glibc_probe_answers_without_jemalloc_statistics(tmp_path: Path) -> None:
    report, _, _ = run_reference(tmp_path, "glibc")
    held = next(s for s in report["snapshots"] if s["label"] == "held")
    assert held["allocator"]["backend"] == "glibc"
    assert held["allocator"]["resident_bytes"] is None and held["allocator"]["allocated_bytes"] > 0
    # glibc's figure also moves with everything else the JVM frees meanwhile, so bounded below, not exact.
    assert held["deltas"]["allocator.allocated_bytes"] >= NETTY - 512 * 1024
    assert held["deltas"]["nmt.categories.Other.committed_bytes"] >= NETTY


def test_a_signal_dumps_the_allocators_statistics_into_the_run_directory(tmp_path: Path) -> None:
    process, out = start_exec(tmp_path, "jemalloc", 3000)
    wait_for_line(process, "Allocated: 512 KB")
    pid = pid_of(str(out))
    assert pid is not None
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not list((out / "allocator").glob("allocator-dump-*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.communicate(timeout=120)
    (dump,) = list((out / "allocator").glob("allocator-dump-*.json"))
    assert json.loads(dump.read_text())["jemalloc"]["version"].startswith("5.3.0")
    assert process.returncode == 0


def test_a_program_that_fails_keeps_its_exit_code_and_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_workbench("exec", "--allocator", "glibc", "--out", str(out), "--", "java", "-cp",
                           str(tmp_path), "NoSuchMainClass", cwd=tmp_path)
    assert result.returncode == 1
    assert "NoSuchMainClass" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["program"]["exit_code"] == 1 and report["status"] == "ok"
    assert (out / "report.html").is_file() and (out / "timeline.parquet").is_file()


def test_a_program_killed_by_a_signal_is_a_failed_run_with_the_signal(tmp_path: Path) -> None:
    crash = tmp_path / "Crash.java"
    crash.write_text("public class Crash { public static void main(String[] a) throws Exception {\n"
                     "  new ProcessBuilder(\"kill\", \"-KILL\", String.valueOf(ProcessHandle.current().pid()))"
                     ".start().waitFor();\n  Thread.sleep(30000);\n} }\n")
    out = tmp_path / "run"
    result = run_workbench("exec", "--allocator", "glibc", "--no-html", "--quiet", "--out", str(out), "--", "java",
                           str(crash), cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == (
        "workbench: Signal: the program was killed by SIGKILL (from outside, or the kernel's OOM killer: see dmesg)")
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and report["program"]["exit_code"] == -9
    assert report["error"]["type"] == "Signal" and not (out / "report.html").exists()


def test_exec_refuses_what_is_not_a_java_command(tmp_path: Path) -> None:
    result = run_workbench("exec", "--", "python3", "-c", "print(1)", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "workbench: exec: python3: expected a java launcher (the probe and agent need a JVM)"


def test_attach_without_agent_uses_jcmd(tmp_path: Path) -> None:
    command = reference_command(8000)
    program = subprocess.Popen([command[0], "-XX:NativeMemoryTracking=summary", *command[1:]],
                               stdout=subprocess.PIPE, text=True)
    try:
        wait_for_line(program, "Allocated: 512 KB")
        out = tmp_path / "attach"
        result = run_workbench("attach", str(program.pid), "--duration", "3s", "--out", str(out), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        report = json.loads((out / "report.json").read_text())
        assert report["program"]["sources"].get("jvm") == "jcmd" and "allocator" not in report["program"]["sources"]
        start = report["snapshots"][0]
        assert start["label"] == "start" and start["allocator"] is None
        assert start["nmt"]["categories"]["Other"]["committed_bytes"] >= NETTY
        assert report["program"]["pid"] == program.pid and report["program"]["exit_code"] is None
    finally:
        program.kill()
        program.wait()


@pytest.mark.parametrize("leave_running", [False, True])
def test_killing_exec_with_sigkill_takes_the_program_along_unless_asked(tmp_path: Path, leave_running: bool) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "workbench", "exec", "--allocator", "glibc", "--out", str(out), "--quiet",
            *(["--leave-running"] if leave_running else []), "--", *reference_command(60_000)]
    workbench = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while (program := pid_of(str(out))) is None or not (out / "smaps" / "start.txt").exists():
        assert time.monotonic() < deadline and workbench.poll() is None
        time.sleep(0.1)
    workbench.kill()
    workbench.wait(timeout=30)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{program}").exists() and time.monotonic() < deadline and not leave_running:
        time.sleep(0.1)
    try:
        assert Path(f"/proc/{program}").exists() == leave_running
    finally:
        if Path(f"/proc/{program}").exists():
            os.kill(program, signal.SIGKILL)


def test_exec_under_the_built_mimalloc_reads_its_statistics(tmp_path: Path) -> None:
    # The probe reads the workbench build's statistics (MI_STAT=2) as the worker's MimallocBackend does.
    report, _, _ = run_reference(tmp_path, "mimalloc")
    held = next(s for s in report["snapshots"] if s["label"] == "held")
    figures, raw = held["allocator"], held["allocator"]["raw"]
    assert figures["backend"] == "mimalloc" and report["allocator"]["backend"] == "mimalloc"
    assert figures["allocated_bytes"] == raw["normal_bytes"] + raw["large_bytes"] + raw["huge_bytes"]
    assert figures["active_bytes"] == raw["page_committed_bytes"] and figures["mapped_bytes"] == raw["committed_bytes"]
    assert figures["retained_bytes"] == raw["reserved_bytes"] - raw["committed_bytes"]
    assert figures["resident_bytes"] is None and figures["metadata_bytes"] is None
    # Netty's 4 MiB chunk (NMT's 18-byte header on top) is a large block at its bin's size (measured: +4,718,592 B
    # of large blocks, the 4.5 MiB bin); the JVM's own mallocs move allocated by more (+6,767,264 B measured).
    start = next(s for s in report["snapshots"] if s["label"] == "start")["allocator"]["raw"]
    assert raw["large_bytes"] + raw["huge_bytes"] - start["large_bytes"] - start["huge_bytes"] >= NETTY
    assert NETTY <= held["deltas"]["allocator.allocated_bytes"] < 64 * MIB
    assert held["deltas"]["nmt.categories.Other.committed_bytes"] >= NETTY


def test_the_exit_snapshot_sees_the_seed_programs_netty_chunk(tmp_path: Path) -> None:
    # The seed program: allocate 100k ints, close, exit at once; before the exit snapshot the chunk was never seen.
    out = tmp_path / "seed"
    result = run_workbench("exec", "--out", str(out), "--no-html", "--quiet", "--", *reference_command(0))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [s["label"] for s in report["snapshots"]] == ["start", "exit"]
    exit_ = report["snapshots"][-1]
    assert NETTY - 4096 <= exit_["deltas"]["nmt.categories.Other.committed_bytes"] <= NETTY + 64 * 1024
    assert exit_["allocator"]["allocated_bytes"] > 0 and exit_["process"]["rss_bytes"] > 0


@pytest.mark.parametrize("jdk", ["17", "25"])
def test_exec_starts_its_agent_without_costing_the_jvm_its_archived_module_graph(tmp_path: Path, jdk: str) -> None:
    """-javaagent adds java.instrument to the root modules, which turns CDS's archived module graph off (the JVM
    then builds it at start-up: +30-37 ms); the native agent exec starts the Java agent with does not. The
    program's JVM keeps the graph and the boot layer it has alone, and the agent still opens the diagnostic command
    to itself (else the start snapshot's NMT would cost the program 150-300 ms of MBean server)."""
    if jdk == "25" and not JDK25.is_dir():
        pytest.skip("the Temurin JDK 25 is not installed here")
    java = "java" if jdk == "17" else str(JDK25 / "bin" / "java")
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(Path(__file__).parent / "programs" / "ModulesMain.java")],
                   check=True)
    program = [java, "-Xlog:cds=info", "-cp", str(classes), "ModulesMain"]
    alone = subprocess.run(program, capture_output=True, text=True, check=True).stdout
    out = tmp_path / "run"
    result = run_workbench("exec", "--out", str(out), "--no-html", "--quiet", "--", *program)
    assert result.returncode == 0, result.stderr
    for printed in (alone, result.stdout):
        assert "full module graph: enabled" in printed and "optimized module handling: disabled" not in printed
    boot_modules = [line for line in alone.splitlines() if line.startswith("boot modules: ")]
    assert len(boot_modules) == 1 and boot_modules[0] in result.stdout.splitlines()
    assert "sun.management open: false" in alone and "sun.management open: true" in result.stdout
    assert "workbench-agent" not in result.stderr
    start = json.loads((out / "report.json").read_text())["snapshots"][0]
    assert start["label"] == "start" and start["nmt"]["total_committed_bytes"] > 0


def test_java_version_never_shows_a_zero_layer(tmp_path: Path) -> None:
    for n in range(10):
        out = tmp_path / f"v{n}"
        result = run_workbench("exec", "--out", str(out), "--no-html", "--quiet", "--", "java", "-version")
        assert result.returncode == 0, result.stderr
        snapshots = json.loads((out / "report.json").read_text())["snapshots"]
        assert [s["label"] for s in snapshots] == ["start", "exit"]
        for snapshot in snapshots:
            for layer, figure in (("process", "rss_bytes"), ("allocator", "allocated_bytes"),
                                  ("nmt", "total_committed_bytes")):
                assert snapshot[layer] is not None and snapshot[layer][figure] > 0, (n, snapshot["label"], layer)


def test_exec_prepares_its_report_at_the_lowest_priority_and_samples_from_the_release(tmp_path: Path) -> None:
    # The imports and the report's writers run beside the program in a thread at nice 19; the main thread (which
    # takes the start snapshot and releases the program) and the sampler stay at the workbench's own priority.
    out = tmp_path / "run"
    workbench = subprocess.Popen([sys.executable, "-m", "workbench", "exec", "--out", str(out), "--quiet", "--",
                                  *reference_command(1500)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    seen: dict[int, int] = {}  # thread id -> the highest nice it had
    while workbench.poll() is None:
        for task in Path(f"/proc/{workbench.pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seen[int(task.name)] = max(seen.get(int(task.name), -20), int(fields[16]))  # stat's 19th: nice
        time.sleep(0.005)
    assert workbench.returncode == 0, workbench.stderr.read() if workbench.stderr else ""
    assert seen[workbench.pid] == 0 and 19 in seen.values()
    assert sorted(set(seen.values())) == [0, 19]
    report = json.loads((out / "report.json").read_text())
    start = next(s for s in report["snapshots"] if s["label"] == "start")
    assert start["nmt"] is not None and start["allocator"] is not None
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    # Read while the imports ran and written once they were done: the timeline starts at the release.
    assert 0 < samples[0]["t_ms"] - start["t_ms"] < 250
    assert all(b["t_ms"] > a["t_ms"] for a, b in zip(samples, samples[1:]))
    assert samples[0]["allocator_allocated_bytes"] is not None


# What `exec` must not have loaded when it starts java: pydantic and the report (they load beside the program at
# nice 19), the sampler and the probes' readers (while the JVM starts), the build machinery (a cached allocator is
# only looked up: no tarfile, no Debian source fetcher).
NOT_BEFORE_JAVA = ("pydantic", "workbench.report.model", "workbench.run.external", "workbench.probes.native_probe",
                   "workbench.probes.allocator", "workbench.toolchain.debian_source", "tarfile")
AT_POPEN = """
import json, subprocess, sys
from workbench.cli import main
seen = {}
started = subprocess.Popen.__init__
def noting(self, args, *rest, **options):
    if not seen and str(args[0]).endswith("java"):
        seen["loaded"] = sorted(sys.modules)
    started(self, args, *rest, **options)
subprocess.Popen.__init__ = noting
code = main(sys.argv[1:])
print(json.dumps({"code": code, "at_java": seen["loaded"], "at_end": sorted(sys.modules)}))
"""


def test_exec_starts_java_before_loading_the_sampler_the_report_or_the_build_machinery(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", AT_POPEN, "exec", "--out", str(tmp_path / "run"), "--no-html",
                             "--quiet", "--", "java", "-version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["code"] == 0
    assert [m for m in NOT_BEFORE_JAVA if m in seen["at_java"]] == []
    # The sampler and pydantic did load afterwards (the hook saw the right process), and the run has its report.
    assert {"workbench.run.external", "workbench.probes.native_probe", "pydantic"} <= set(seen["at_end"])
    assert json.loads((tmp_path / "run" / "report.json").read_text())["snapshots"][0]["label"] == "start"


def test_exec_serves_its_agent_from_the_native_agent_without_nio_and_detaches_it_before_the_exit(
        tmp_path: Path) -> None:
    """exec's agent socket is served by libworkbench-jvmagent.so in C (a JVM's first NIO server socket took the Java
    agent's thread 77-100 ms from VMInit to its first answer, while the program was held). Its replies leave nothing
    in the program's direct buffer pool (the Java server's went through NIO's temporary direct buffer); its thread
    joins the JVM for the stats replies only (with a Java thread's stack) and leaves it before the JVM exits
    (HotSpot's exit waits up to 300 ms for an attached thread that is in native code)."""
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(Path(__file__).parent / "programs" / "RepeatedMain.java")],
                   check=True)
    loaded, threads = tmp_path / "classes.txt", tmp_path / "threads.txt"
    out = tmp_path / "run"
    result = run_workbench("exec", "--out", str(out), "--no-html", "--quiet", "--interval", "10ms", "--",
                           "java", f"-Xlog:class+load:file={loaded}", f"-Xlog:os+thread=info:file={threads}",
                           "-cp", str(classes), "RepeatedMain", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["kept 77777"] and "workbench-agent" not in result.stderr
    snapshots = json.loads((out / "report.json").read_text())["snapshots"]
    assert [s["label"] for s in snapshots] == ["start", "exit"]
    start, exit_ = (s["jvm_runtime"]["buffer_pools"]["direct"] for s in snapshots)
    # The program's one buffer and nothing of the agent's, after at least the start snapshot's reply.
    assert start["count"] == 0 and start["total_capacity_bytes"] == 0
    assert exit_["count"] == 1 and exit_["total_capacity_bytes"] == 77_777
    classes_loaded = loaded.read_text()
    assert "workbench.agent.NativeStart " in classes_loaded
    # Nor ProcessHandle's implementation (its lambdas and reaper executor): the native agent gives the agent its pid.
    for unused in ("sun.nio.ch.ServerSocketChannelImpl ", "sun.nio.ch.UnixDomainSockets ", "java.lang.ProcessHandleImpl "):
        assert unused not in classes_loaded, unused
    log = threads.read_text().splitlines()
    attached = {line.split("tid: ")[1].split(",")[0]: line for line in log if "Thread attached (tid: " in line}
    # The launcher's main thread (attached at the start, and again by DestroyJavaVM at the end), and the agent's,
    # with a Java thread's 1 MiB stack (not glibc's 8 MiB).
    main_tid = next(iter(attached))
    agent = {tid: line for tid, line in attached.items() if tid != main_tid}
    assert len(agent) == 1, attached
    (tid, line), = agent.items()
    assert line.endswith("(1024K) )."), line
    assert any(f"JavaThread detaching (tid: {tid})" in line for line in log), log[-10:]
