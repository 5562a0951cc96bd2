"""Foundation benchmarks, measured side by side in one run (figures go into the README; no test asserts time).

1. The median cost of one full snapshot (Arrow + NMT + allocator + the mappings + the JVM's regions, and keeping the
   raw files), from a scenario of many snapshots; and in one worker-like process, interleaved, a snapshot beside a
   bare read of the files it reads (/proc/self/maps and PAGEMAP_SCAN, or smaps) and of smaps and smaps_rollup.
2. `workbench run arrow-intvector` beside a plain `java` process doing the same work with NMT on: wall-time ratio.
3. The Java fill kernel's throughput for 100M ints, by write path (unchecked, set, set_safe).

Usage: python benchmarks/bench_foundation.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.toolchain.allocators import resolve_allocator  # noqa: E402
from workbench.toolchain.maven import kernels_classpath  # noqa: E402
from workbench.run.jdk import DIAGNOSTIC_COMMAND_OPTIONS, arrow_options, resolve_jdk  # noqa: E402


def workbench(*args: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "workbench", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def snapshot_cost(snapshots: int) -> list[float]:
    steps = ["  - root_allocator: {}", "  - allocate: {vector: v, count: 100000}", "  - fill: {vector: v, k: 2}"]
    steps += [f"  - snapshot: s{i}" for i in range(snapshots)]
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "many-snapshots.yaml"
        scenario.write_text("name: many-snapshots\ndescription: snapshot cost\nsteps:\n" + "\n".join(steps) + "\n")
        report = Path(tmp) / "r.json"
        workbench("run", str(scenario), "--json", str(report))
        data = json.loads(report.read_text())
    return data["snapshots"]


_SIDE_BY_SIDE = """
import dataclasses, json, os, statistics, sys, time
from pathlib import Path
sys.modules.setdefault("numpy", None)  # as the worker has it (workbench/worker/__main__.py)
from workbench.protocol.spec import WorkerSpec
from workbench.protocol.events import encode
from workbench.worker.session import Session
from workbench.probes import allocator as allocator_probe
from workbench.probes.native_probe import SnapshotLibrary
spec = WorkerSpec.read(Path(sys.argv[1]))
run_dir = Path(sys.argv[2])
spec = dataclasses.replace(spec, run_dir=str(run_dir))
session = Session(spec, lambda event: None if encode(event) else None)
session.reader = SnapshotLibrary(Path(spec.probe_library))
session.allocator_probe = allocator_probe.detect()
session._start_jvm()
for step in session.scenario.steps[:3]:
    session._run_step(step, session.vectors)
session._warm_up()
buffer = bytearray(1 << 22)
def bare(path):
    fd = os.open(path, os.O_RDONLY)
    while os.readv(fd, [buffer]) > 0:
        pass
    os.close(fd)
reader = session.reader
sides = {
    "snapshot": lambda n: session._snapshot(f"s{n}"),
    "reader (maps + PAGEMAP_SCAN, parsed)": lambda n: reader.read_process(),
    "reader (smaps, parsed in C)": lambda n: reader.read_process(mode="smaps"),
    "bare read of /proc/self/maps": lambda n: bare("/proc/self/maps"),
    "bare read of /proc/self/smaps": lambda n: bare("/proc/self/smaps"),
    "bare read of /proc/self/smaps_rollup": lambda n: bare("/proc/self/smaps_rollup"),
}
times = {name: [] for name in sides}
for n in range(int(sys.argv[3])):
    for name, side in sides.items():
        began = time.perf_counter()
        side(n)
        times[name].append((time.perf_counter() - began) * 1000)
print(json.dumps({name: statistics.median(t) for name, t in times.items()}))
"""


def side_by_side(rounds: int) -> dict[str, float]:
    """Medians (ms) of a snapshot and of bare reads of the same files, interleaved in one worker-like process."""
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "side-by-side.yaml"
        scenario.write_text("name: side-by-side\ndescription: a worker spec\nsteps:\n"
                            "  - root_allocator: {}\n  - allocate: {vector: v, count: 100000}\n"
                            "  - fill: {vector: v, k: 2}\n  - snapshot: only\n")
        workbench("run", str(scenario), "--no-html", "--quiet", "--out", f"{tmp}/run")
        spec = Path(tmp) / "run" / "worker-spec.json"
        jemalloc = str(resolve_allocator("jemalloc").library)
        (Path(tmp) / "bench").mkdir()
        out = subprocess.run(
            [sys.executable, "-c", _SIDE_BY_SIDE, str(spec), f"{tmp}/bench", str(rounds)], check=True, cwd=f"{tmp}/bench",
            capture_output=True, text=True,
            env={**os.environ, "LD_PRELOAD": jemalloc, "ARROW_DEFAULT_MEMORY_POOL": "system",
                 "PYTHONPATH": str(ROOT)}).stdout
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side in the wall-time comparison")
    parser.add_argument("--rounds", type=int, default=50, help="interleaved rounds of the side-by-side comparison")
    parser.add_argument("--snapshots-only", action="store_true", help="only the snapshot figures (1.)")
    args = parser.parse_args()
    classpath = ":".join(kernels_classpath())
    jdk = resolve_jdk(None)
    java = str(jdk.home / "bin" / "java")
    jemalloc = str(resolve_allocator("jemalloc").library)

    snapshots = snapshot_cost(100)
    costs = [s["cost_ms"] for s in snapshots]
    per_probe = ", ".join(
        f"{probe} {statistics.median(s['probe_ms'][probe] for s in snapshots):.2f} ms"
        for probe in ("arrow", "nmt", "allocator", "process", "regions", "raw")
    )
    figures = [s["cost_ms"] - s["probe_ms"]["raw"] for s in snapshots]
    print(f"snapshot cost, {len(costs)} snapshots (mappings read by {snapshots[-1]['process']['source']}): median "
          f"{statistics.median(costs):.2f} ms, p90 {sorted(costs)[int(len(costs) * 0.9)]:.2f} ms; without keeping "
          f"the raw files {statistics.median(figures):.2f} ms; median per probe: {per_probe}")
    sides = side_by_side(args.rounds)
    bare = sides["bare read of /proc/self/smaps"]
    print(f"side by side in one process, median of {args.rounds} interleaved rounds: " + "; ".join(
        f"{name} {ms:.2f} ms ({ms / bare:.2f}x smaps)" for name, ms in sides.items()))
    print(f"  goal <= 3 ms: snapshot {sides['snapshot']:.2f} ms, ratio {sides['snapshot'] / 3:.2f}x the goal; "
          f"{os.getloadavg()[0]:.1f} load average meanwhile")

    if args.snapshots_only:
        return
    # The diagnostic command opened as the worker has it (else the plain side's NMT query builds the MBean server).
    plain_cmd = [java, "-XX:NativeMemoryTracking=summary", *arrow_options(jdk), *DIAGNOSTIC_COMMAND_OPTIONS,
                 "-Darrow.allocation.manager.type=Netty", "-cp", classpath,
                 "workbench.jvm.ReferenceProgram", "100000", "1000"]
    plain, tool, tool_no_html = [], [], []
    with tempfile.TemporaryDirectory() as runs:
        for _ in range(args.repeat):  # interleaved, so drift on a noisy machine hits all sides alike
            began = time.perf_counter()
            subprocess.run(plain_cmd, check=True, stdout=subprocess.DEVNULL,
                           env={"LD_PRELOAD": jemalloc, "PATH": "/usr/bin:/bin"})
            plain.append(time.perf_counter() - began)
            tool.append(workbench("run", "arrow-intvector", "--quiet", "--out", f"{runs}/{len(tool)}"))
            tool_no_html.append(workbench("run", "arrow-intvector", "--quiet", "--no-html",
                                          "--out", f"{runs}/n{len(tool_no_html)}"))
    p, t, n = statistics.median(plain), statistics.median(tool), statistics.median(tool_no_html)
    print(f"wall time, median of {args.repeat}: plain java {p:.2f} s; workbench run arrow-intvector {t:.2f} s "
          f"(ratio {t / p:.2f}x), with --no-html {n:.2f} s (ratio {n / p:.2f}x); all hold 1 s")

    out = subprocess.run([java, *arrow_options(jdk), "-cp", classpath, "workbench.jvm.FillThroughput",
                          "100000000", "5"], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()]
    paths = []
    for write in ("unchecked", "set", "set_safe"):
        first = next(int(b) / int(n) for w, kind, n, b in rows if w == write and kind == "first")
        again = [int(b) / int(n) for w, kind, n, b in rows if w == write and kind == "again"]
        paths.append(f"{write} {first:.2f} GB/s first, {statistics.median(again):.2f} GB/s again")
    print(f"fill kernel, 100M ints (400 MB), by write path: {'; '.join(paths)} (median of {len(again)})")


if __name__ == "__main__":
    main()
