"""Allocator builds and the churn comparison, measured in one run (figures go into the README).

1. `workbench build` from nothing (a fresh cache: fetch Debian's source package, configure, compile), and the cached
   lookup every later run does (median of 20 calls in one process).
2. The churn scenario under every allocator (and jemalloc with a background thread): anonymous RSS and the
   allocator's resident/retained after the churn, after closing everything, and after 12 s idle.

Usage: python benchmarks/bench_allocators.py [--skip-build]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALLOCATORS = ["glibc", "jemalloc", "jemalloc@background_thread:true", "tcmalloc", "mimalloc"]


def build_times() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "workbench", "build"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = time.perf_counter() - began
        probe = ("import time, statistics; from workbench.toolchain.jemalloc import ensure_jemalloc\n"
                 "t = []\nfor _ in range(20):\n    s = time.perf_counter(); ensure_jemalloc(quiet=True)\n"
                 "    t.append(time.perf_counter() - s)\nprint(statistics.median(t))")
        cached = float(subprocess.run([sys.executable, "-c", probe], env=env, check=True, cwd=ROOT,
                                      capture_output=True, text=True).stdout)
    print(f"jemalloc build from nothing (fetch source, configure, compile, check): {first:.1f} s; "
          f"cached lookup: {cached * 1000:.2f} ms (median of 20); ratio {first / cached:,.0f}x")


def churn_table() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "compare.json"
        args = [sys.executable, "-m", "workbench", "compare", "intvector-churn-threads", "--quiet", "--json", str(out),
                "--out", str(Path(tmp) / "runs")]
        for allocator in ALLOCATORS:
            args += ["-a", allocator]
        subprocess.run(args, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        data = json.loads(out.read_text())
    mib = 1024 * 1024

    def cell(report: dict, label: str, layer: str, field: str) -> str:  # type: ignore[type-arg]
        snapshot = next(s for s in report["snapshots"] if s["label"] == label)
        value = snapshot[layer][field] if snapshot[layer] else None
        return "-" if value is None else f"{value / mib:.1f}"

    print("| allocator | anon RSS churned | anon RSS closed | anon RSS idle | resident closed | resident idle | "
          "retained idle | vectors churned |")
    print("|---|---|---|---|---|---|---|---|")
    for run in data["runs"]:
        report = run["report"]
        print(f"| {run['allocator']} | {cell(report, 'churned', 'process', 'anon_rss_bytes')} | "
              f"{cell(report, 'closed', 'process', 'anon_rss_bytes')} | {cell(report, 'idle', 'process', 'anon_rss_bytes')} | "
              f"{cell(report, 'closed', 'allocator', 'resident_bytes')} | {cell(report, 'idle', 'allocator', 'resident_bytes')} | "
              f"{cell(report, 'idle', 'allocator', 'retained_bytes')} | {report['step_results'][0]['allocations']:,} |")
    print("(MiB; anon RSS is the whole process's anonymous memory, JVM heap included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-build", action="store_true", help="skip the 80-second build from nothing")
    args = parser.parse_args()
    if not args.skip_build:
        build_times()
    churn_table()


if __name__ == "__main__":
    main()
