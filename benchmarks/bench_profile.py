"""What ``--profile`` costs: the churn scenario with async-profiler's native-memory recording and without, side by
side in one run, runs interleaved.

Per variant: the wall time of the whole `workbench run` (JVM start, the steps, the reader of the recording, the
report) and of the steps alone (report.sampler.steps_ms), and the churn's throughput (vectors allocated, filled and
closed by 4 Java threads in a fixed 4 s). The ratios profiled/unprofiled are what docs/performance.md quotes; the
goal is at most 1.10x at the default interval.

Then the interval's accuracy: arrow-intvector at each interval and at 0 (every malloc), the live bytes by owner at
its last snapshot; the pool's 4 MiB chunk is exact at every interval up to 4 MiB, the small allocations are
estimates.

Usage: python benchmarks/bench_profile.py [--repeat N] [--intervals 256KiB,0]
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "intvector-churn-threads"


def churn_run(tmp: Path, name: str, interval: str | None) -> tuple[dict[str, Any], float]:
    out = tmp / name
    profile = ["--profile-interval", interval] if interval is not None else []
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "workbench", "run", SCENARIO, "--hold", "0", "--out", str(out),
                    "--quiet", "--no-html", *profile], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    return json.loads((out / "report.json").read_text()), wall


def accuracy(tmp: Path, intervals: list[str]) -> None:
    print("arrow-intvector at 'allocator-closed', live bytes by owner (MiB) and mallocs recorded:")
    for interval in [*intervals, "0"] if "0" not in intervals else intervals:
        out = tmp / f"accuracy-{interval}"
        subprocess.run([sys.executable, "-m", "workbench", "run", "arrow-intvector", "--hold", "0", "--out", str(out),
                        "--quiet", "--no-html", "--profile-interval", interval], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL)
        report = json.loads((out / "report.json").read_text())
        last = report["snapshots"][-1]["call_sites"]
        owners = ", ".join(f"{owner} {size / 2**20:.2f}" for owner, size in sorted(last["owners"].items()))
        print(f"  --profile-interval {interval}: live {last['live_bytes'] / 2**20:.2f} in {last['stacks']:,} stacks "
              f"({owners}); {report['profile']['mallocs']:,} mallocs, {report['profile']['frees']:,} frees recorded")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--intervals", default="256KiB,0", help="comma-separated --profile-interval values")
    args = parser.parse_args()
    variants: list[str | None] = [None, *args.intervals.split(",")]
    results: dict[str | None, list[tuple[int, float, float, int]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i in range(args.repeat):
            for variant in variants:
                report, wall = churn_run(tmp, f"{variant or 'off'}-{i}".replace("/", "-"), variant)
                churn = report["step_results"][0]["allocations"]
                recorded = report["profile"]["mallocs"] if report.get("profile") else 0
                results[variant].append((churn, report["sampler"]["steps_ms"] / 1000, wall, recorded))
    base = results[None]
    base_churn = statistics.median(r[0] for r in base)
    base_steps = statistics.median(r[1] for r in base)
    base_wall = statistics.median(r[2] for r in base)
    print(f"{SCENARIO}, median of {args.repeat} runs each, interleaved:")
    print(f"  without --profile: {base_churn:,.0f} vectors in 4 s; steps {base_steps:.2f} s; whole run "
          f"{base_wall:.2f} s (runs: {[r[0] for r in base]} vectors)")
    for variant in variants[1:]:
        rows = results[variant]
        churn = statistics.median(r[0] for r in rows)
        steps = statistics.median(r[1] for r in rows)
        wall = statistics.median(r[2] for r in rows)
        recorded = statistics.median(r[3] for r in rows)
        print(f"  --profile-interval {variant}: {churn:,.0f} vectors (throughput ratio profiled/not "
              f"{churn / base_churn:.3f}); steps {steps:.2f} s ({steps / base_steps:.3f}x); whole run {wall:.2f} s "
              f"({wall / base_wall:.3f}x, the reader included); {recorded:,.0f} mallocs recorded "
              f"(runs: {[r[0] for r in rows]} vectors)")
    with tempfile.TemporaryDirectory() as tmp_name:
        accuracy(Path(tmp_name), args.intervals.split(","))


if __name__ == "__main__":
    main()
