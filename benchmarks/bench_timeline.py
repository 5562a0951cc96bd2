"""The sampler's overhead at the default interval, measured two ways side by side in one run.

1. Self-measured: the time the sampler thread spent taking samples / the scenario's wall time (report.sampler).
2. A/B: the churn scenario's throughput (vectors allocated, filled and closed by 4 Java threads in a fixed time)
   with the sampler at 100 ms and with it off, runs interleaved.

Usage: python benchmarks/bench_timeline.py [--repeat N]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
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
