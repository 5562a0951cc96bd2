"""The sampler's overhead at the default interval, measured two ways side by side in one run.

1. Self-measured: the time the sampler thread spent taking samples / the scenario's wall time (report.sampler).
2. A/B: the churn scenario's throughput (vectors allocated, filled and closed by 4 Java threads in a fixed time)
   with the sampler at 100 ms and with it off, runs interleaved.
3. Its cost in pages: an idle scenario (nothing runs between two snapshots 6 s apart) with the sampler off, at its
   default (100 ms, NMT every 10th sample) and at 10 ms with NMT every sample, under jemalloc and glibc, runs
   interleaved: what anonymous RSS, the allocator's allocated and the Java heap's resident pages grew by over the
   samples taken in between, side by side with the sampler off.

Usage: python benchmarks/bench_timeline.py [--repeat N] [--pages-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHURN = (ROOT / "scenarios" / "intvector-churn-threads.yaml").read_text()


def churn_run(tmp: Path, name: str, interval: str) -> dict:  # type: ignore[type-arg]
    scenario = tmp / f"{name}.yaml"
    scenario.write_text(CHURN.replace("name: intvector-churn-threads", f"name: {name}")
                        .replace("steps:", f"sample_interval: {interval}\nsteps:"))
    out = tmp / f"{name}-run"
    subprocess.run([sys.executable, "-m", "workbench", "run", str(scenario), "--hold", "0", "--out", str(out),
                    "--allocator", "glibc", "--quiet"], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
    report = json.loads((out / "report.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()] \
        if (out / "samples.jsonl").exists() else []
    report["sample_costs_us"] = [s["cost_us"] for s in samples]
    return report  # type: ignore[no-any-return]


IDLE = """name: {name}
description: nothing runs between two snapshots; only the sampler, if it is on
sample_interval: {interval}
nmt_every: {nmt_every}
steps:
  - root_allocator: {{name: root}}
  - sleep: 6s
  - snapshot: before
  - sleep: 6s
  - snapshot: after
"""
# (label, sample_interval, nmt_every)
SAMPLERS = (("off", "0", 1), ("100 ms, NMT every 10th", "100ms", 10), ("10 ms, NMT every sample", "10ms", 1))


def idle_run(tmp: Path, name: str, allocator: str, interval: str, nmt_every: int) -> dict[str, int]:
    """The growth from `before` to `after` of an idle run, and the samples taken in between."""
    scenario = tmp / f"{name}.yaml"
    scenario.write_text(IDLE.format(name=name, interval=interval, nmt_every=nmt_every))
    out = tmp / f"{name}-run"
    subprocess.run([sys.executable, "-m", "workbench", "run", str(scenario), "--out", str(out), "--allocator",
                    allocator, "--quiet", "--no-html"], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
    report = json.loads((out / "report.json").read_text())
    before, after = report["snapshots"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()] \
        if (out / "samples.jsonl").exists() else []
    heap = "java-heap"
    return {
        "samples": sum(before["t_ms"] < s["t_ms"] < after["t_ms"] for s in samples),
        "anon": after["process"]["anon_rss_bytes"] - before["process"]["anon_rss_bytes"],
        "allocated": after["allocator"]["allocated_bytes"] - before["allocator"]["allocated_bytes"],
        "heap": after["attribution"]["owners"][heap]["resident_bytes"]
        - before["attribution"]["owners"][heap]["resident_bytes"],
    }


def pages(tmp: Path, repeat: int) -> None:
    runs: dict[tuple[str, str], list[dict[str, int]]] = {}
    for i in range(repeat):
        for allocator in ("jemalloc", "glibc"):
            for label, interval, nmt_every in SAMPLERS:
                runs.setdefault((allocator, label), []).append(
                    idle_run(tmp, f"idle-{allocator}-{interval}-{i}", allocator, interval, nmt_every))
    print(f"the sampler's cost in pages over 6 s of an idle scenario (median of {repeat}; per sample: the growth "
          "beyond the sampler-off run's, over the samples taken)")
    for allocator in ("jemalloc", "glibc"):
        off = {k: statistics.median(r[k] for r in runs[(allocator, "off")]) for k in ("anon", "allocated", "heap")}
        for label, _, _ in SAMPLERS:
            rows = runs[(allocator, label)]
            median = {k: statistics.median(r[k] for r in rows) for k in ("samples", "anon", "allocated", "heap")}
            line = (f"  {allocator:8} sampler {label:24} {int(median['samples']):4} samples: anonymous RSS "
                    f"{median['anon'] / 1024:+9.1f} KiB, allocated {median['allocated'] / 1024:+8.1f} KiB, "
                    f"Java heap resident {median['heap'] / 1024:+8.1f} KiB")
            if median["samples"]:
                line += (f"; per sample beyond off: {(median['anon'] - off['anon']) / median['samples']:+.0f} B "
                         f"anonymous, {(median['allocated'] - off['allocated']) / median['samples']:+.0f} B allocated")
            print(line + f" (runs: anon {[r['anon'] for r in rows]}, allocated {[r['allocated'] for r in rows]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages-only", action="store_true", help="Only the cost in pages (part 3).")
    args = parser.parse_args()
    if args.pages_only:
        with tempfile.TemporaryDirectory() as tmp_name:
            pages(Path(tmp_name), args.repeat)
        return
    on, off, fractions = [], [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i in range(args.repeat):
            sampled = churn_run(tmp, f"on{i}", "100ms")
            unsampled = churn_run(tmp, f"off{i}", "0")
            on.append(sampled["step_results"][0]["allocations"])
            off.append(unsampled["step_results"][0]["allocations"])
            fractions.append(sampled["sampler"]["overhead_fraction"])
        reference = churn_run(tmp, "reference", "100ms")
        pages(tmp, args.repeat)
    print(f"sampler at 100 ms, self-measured: {statistics.median(fractions) * 100:.2f}% of the scenario's wall time "
          f"(median of {len(fractions)}; {reference['sampler']['samples']} samples, "
          f"{reference['sampler']['cost_ms'] / max(reference['sampler']['samples'], 1):.2f} ms each)")
    costs = sorted(reference["sample_costs_us"])
    if costs:
        print(f"one timeline sample: median {statistics.median(costs) / 1000:.3f} ms, p90 "
              f"{costs[int(len(costs) * 0.9)] / 1000:.3f} ms ({len(costs)} samples; NMT every 10th); goal <= 0.5 ms")
    ratio = statistics.median(on) / statistics.median(off)
    print(f"churn throughput, median of {args.repeat}: sampler on {statistics.median(on):,} vectors, "
          f"off {statistics.median(off):,} vectors in 4 s; ratio on/off {ratio:.3f} "
          f"(runs: on {on}, off {off})")


if __name__ == "__main__":
    main()
