"""Foundation benchmarks, measured side by side in one run (figures go into the README; no test asserts time).

1. The median cost of one full snapshot (Arrow + NMT + allocator + smaps), from a scenario of many snapshots.
2. `workbench run arrow-intvector` beside a plain `java` process doing the same work with NMT on: wall-time ratio.
3. The Java fill kernel's throughput for 100M ints, by write path (unchecked, set, set_safe).

Usage: python benchmarks/bench_foundation.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
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
from workbench.run.jdk import arrow_options, resolve_jdk  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side in the wall-time comparison")
    args = parser.parse_args()
    classpath = ":".join(kernels_classpath())
    jdk = resolve_jdk(None)
    java = str(jdk.home / "bin" / "java")
    jemalloc = str(resolve_allocator("jemalloc").library)

    snapshots = snapshot_cost(100)
    costs = [s["cost_ms"] for s in snapshots]
    per_probe = ", ".join(
        f"{probe} {statistics.median(s['probe_ms'][probe] for s in snapshots):.2f} ms"
        for probe in ("arrow", "nmt", "allocator", "process")
    )
    print(f"snapshot cost (all four probes), {len(costs)} snapshots: median {statistics.median(costs):.2f} ms, "
          f"p90 {sorted(costs)[int(len(costs) * 0.9)]:.2f} ms; median per probe: {per_probe}")

    plain_cmd = [java, "-XX:NativeMemoryTracking=summary", *arrow_options(jdk),
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
