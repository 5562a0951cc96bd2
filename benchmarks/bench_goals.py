"""Issue 15's goals, each measured side by side with the bare program in one run (no test asserts time).

1. run: `workbench run arrow-intvector` (report.html drawn; and with --no-html) beside a plain `java` doing the same
   work with NMT on (both hold 1 s): wall-time ratio. Goal <= 1.5x with the HTML.
2. report: drawing report.html of that run (render_html in this process, the run directory's samples). Goal <= 2 s
   (for the 8 GiB scenario, see --scale).
3. fill: the fill kernel's throughput for 100M ints by write path (unchecked, set, set_safe). Goal >= 4 GB/s.
4. exec: `workbench exec -- java ... ReferenceProgram` beside the same `java` alone. Goal <= 1.15x.
   snapshot and sample: from the `run` part's run directories (each checkout's, side by side): a full snapshot's
   cost (report.json's cost_ms) and a timeline sample's (samples.jsonl's cost_us), medians. Goals <= 3 ms, 0.5 ms.
5. memory: peak RSS (VmHWM) of the workbench process and of its worker, for arrow-intvector and, with --scale, for
   intvector-8g (8 GiB of vectors: run it alone on the machine).

The workbench runs as a user's `pip install .` has it: with its bytecode compiled (here into a temporary
PYTHONPYCACHEPREFIX: the package compiled before the first run, the libraries it imports by one untimed run), not compiled from source at every start as under an editable
install with PYTHONDONTWRITEBYTECODE=1; the `bytecode` line measures what that difference costs.

With --against DIR (another checkout of the workbench, e.g. main's) the run and exec goals also time that
checkout's workbench, interleaved with this one's in the same run: before and after, side by side.

Usage: python benchmarks/bench_goals.py [--repeat N] [--scale] [--parts run,exec,...] [--against DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.report.html import render_html  # noqa: E402
from workbench.report.model import report_from_dict  # noqa: E402
from workbench.run.jdk import DIAGNOSTIC_COMMAND_OPTIONS, Jdk, arrow_options, resolve_jdk  # noqa: E402
from workbench.toolchain.allocators import resolve_allocator  # noqa: E402
from workbench.toolchain.maven import kernels_classpath  # noqa: E402

GiB = 1024**3


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


class PeakRss(threading.Thread):
    """Polls the peak RSS (VmHWM, the kernel's own high-water mark) of a process and of its children until it ends."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks: dict[str, int] = {}  # "workbench", "worker" -> bytes

    def run(self) -> None:
        while True:
            own = _hwm_kib(self.pid)
            if own is None:
                return
            self.peaks["workbench"] = max(self.peaks.get("workbench", 0), own * 1024)
            try:
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
            except OSError:
                children = []
            for child in children:
                worker = _hwm_kib(int(child))
                if worker is not None:
                    self.peaks["worker"] = max(self.peaks.get("worker", 0), worker * 1024)
            time.sleep(0.02)


def timed(command: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
          ) -> tuple[float, dict[str, int]]:
    """Wall seconds of the command, and the peak RSS of it and of its children."""
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    peak = PeakRss(process.pid)
    peak.start()
    if process.wait() not in ok:
        raise SystemExit(f"{command[:4]} ... exited {process.returncode}")
    elapsed = time.perf_counter() - began
    peak.join(timeout=1)
    return elapsed, peak.peaks


# What the workbench processes (and their workers) run with: set by compiled_bytecode().
TOOL_ENV: dict[str, str] | None = None


def compiled_bytecode(cache: str, trees: list[Path]) -> dict[str, str]:
    """An environment whose Python writes and reads bytecode in ``cache``, the packages of ``trees`` compiled into it
    already (the prefix keeps each source file's own bytecode)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    for tree in trees:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "workbench")], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return env


def workbench(*args: str, ok: tuple[int, ...] = (0,), tree: Path = ROOT) -> tuple[float, dict[str, int]]:
    """``python -m workbench ARGS`` of the checkout ``tree`` (first on PYTHONPATH: its worker follows it).

    ``-P``: without it ``-m`` puts the current directory first on the path, and run from a checkout that checkout's
    workbench was the one timed on both sides of ``--against`` (found 2026-12-02: earlier rounds' before/after pairs
    run from the project root timed the same code twice)."""
    assert TOOL_ENV is not None
    env = dict(TOOL_ENV, PYTHONPATH=os.pathsep.join(filter(None, [str(tree), TOOL_ENV.get("PYTHONPATH")])))
    return timed([sys.executable, "-P", "-m", "workbench", *args], env=env, ok=ok)


def tree_classpath(tree: Path) -> str:
    """The kernels' classpath as the checkout ``tree`` builds it. `exec` runs ReferenceProgram from it: the jar also
    holds the Java agent, and the agent's classes load from the program's classpath first, so a program run from
    this checkout's jar would give ``--against``'s side this checkout's agent (found 2026-12-04, seventh round)."""
    assert TOOL_ENV is not None
    env = dict(TOOL_ENV, PYTHONPATH=str(tree))
    script = "from workbench.toolchain.maven import kernels_classpath; print(':'.join(kernels_classpath(quiet=True)))"
    return subprocess.run([sys.executable, "-P", "-c", script], env=env, check=True, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]


def bytecode_line(repeat: int) -> str:
    """Importing every command of the CLI, from source (each start compiles it) and from compiled bytecode."""
    command = [sys.executable, "-c", "from workbench.cli._app import build_app; build_app()"]
    source_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    source, compiled = [], []
    timed(command, env=TOOL_ENV)  # the libraries' bytecode into the cache
    for _ in range(repeat):
        source.append(timed(command, env=source_env)[0])
        compiled.append(timed(command, env=TOOL_ENV)[0])
    return (f"bytecode importing the CLI (all commands): from source {statistics.median(source):.2f} s, compiled "
            f"{statistics.median(compiled):.2f} s (median of {repeat})")


def ratio_line(name: str, plain: list[float], tool: dict[str, list[float]], goal: str) -> str:
    base = statistics.median(plain)
    sides = "; ".join(f"{label} {statistics.median(t):.2f} s ({statistics.median(t) / base:.2f}x)"
                      for label, t in tool.items())
    return f"{name:<7} plain java {base:.2f} s; {sides}; goal {goal}"


def draw_time(run_dir: Path, repeat: int = 5) -> tuple[float, int]:
    """Median seconds to draw report.html of a run (in this process, after one draw to load the renderer)."""
    report = report_from_dict(json.loads((run_dir / "report.json").read_text(encoding="utf-8")))
    page = render_html(report, run_dir)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        render_html(report, run_dir)
        times.append(time.perf_counter() - began)
    return statistics.median(times), len(page.encode("utf-8"))


def run_costs(run_dirs: list[Path]) -> tuple[list[float], list[float]]:
    """Every full snapshot's cost (ms, report.json) and every timeline sample's (us, samples.jsonl) of these runs."""
    snapshots: list[float] = []
    samples: list[float] = []
    for run_dir in run_dirs:
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        snapshots += [s["cost_ms"] for s in report["snapshots"]]
        lines = (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
        samples += [json.loads(line)["cost_us"] for line in lines]
    return snapshots, samples


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024**2:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of each side in the wall-time comparisons (0: only --scale)")
    parser.add_argument("--scale", action="store_true", help="also run intvector-8g once (8 GiB of vectors)")
    parser.add_argument("--parts", default="run,report,exec,fill,memory,bytecode",
                        help="which goals to measure side by side (comma-separated)")
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout of the workbench timed beside this one (run and exec)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    global TOOL_ENV
    cache = tempfile.TemporaryDirectory()
    against = args.against.resolve() if args.against is not None else None
    TOOL_ENV = compiled_bytecode(cache.name, [ROOT, *([against] if against else [])])
    classpath = ":".join(kernels_classpath())
    jdk = resolve_jdk(None)
    java = str(jdk.home / "bin" / "java")
    jemalloc = str(resolve_allocator("jemalloc").library)
    # The diagnostic command opened to the program as the workbench's JVMs have it (the worker's options, exec's
    # agent): without it the program's closing NMT query builds the platform MBean server, 130-150 ms that only the
    # plain side paid until the seventh round (docs/performance.md).
    program = [*arrow_options(jdk), *DIAGNOSTIC_COMMAND_OPTIONS, "-Darrow.allocation.manager.type=Netty", "-cp",
               classpath, "workbench.jvm.ReferenceProgram", "100000", "1000"]

    if args.repeat > 0:
        side_by_side(args.repeat, java, jdk, classpath, program, {"LD_PRELOAD": jemalloc, "PATH": "/usr/bin:/bin"},
                     parts, against)
    if args.scale:
        scale()


def side_by_side(repeat: int, java: str, jdk: Jdk, classpath: str, program: list[str],
                 plain_env: dict[str, str], parts: set[str], against: Path | None = None) -> None:
    runs_too = bool(parts & {"run", "report", "memory"})
    plain_run, plain_exec, tool, tool_no_html, exec_times = [], [], [], [], []
    other_run: list[float] = []
    other_exec: list[float] = []
    peaks: dict[str, int] = {}
    program_of = {ROOT: program}
    if against is not None and "exec" in parts:
        index = program.index("-cp") + 1
        program_of[against] = [*program[:index], tree_classpath(against), *program[index + 1:]]
    with tempfile.TemporaryDirectory() as runs:
        # Once untimed: the libraries' bytecode is written into the cache (a pip install has it), the OS caches warm.
        for tree in [ROOT, *([against] if against else [])]:
            if runs_too:
                workbench("run", "arrow-intvector", "--quiet", "--out", f"{runs}/warm-run-{tree.name}", tree=tree)
            if "exec" in parts:
                workbench("exec", "--quiet", "--out", f"{runs}/warm-exec-{tree.name}", "--", java,
                          *program_of[tree], tree=tree)
        for index in range(repeat):  # interleaved, so drift on a noisy machine hits all sides alike
            if runs_too:
                plain_run.append(timed([java, "-XX:NativeMemoryTracking=summary", *program], env=plain_env)[0])
                elapsed, peaks = workbench("run", "arrow-intvector", "--quiet", "--out", f"{runs}/run-{index}")
                tool.append(elapsed)
                tool_no_html.append(workbench("run", "arrow-intvector", "--quiet", "--no-html",
                                              "--out", f"{runs}/no-html-{index}")[0])
                if against is not None:
                    other_run.append(workbench("run", "arrow-intvector", "--quiet", "--out",
                                               f"{runs}/against-run-{index}", tree=against)[0])
            if "exec" in parts:
                plain_exec.append(timed([java, *program], env=plain_env)[0])
                exec_times.append(workbench("exec", "--quiet", "--out", f"{runs}/exec-{index}", "--", java,
                                            *program)[0])
                if against is not None:
                    other_exec.append(workbench("exec", "--quiet", "--out", f"{runs}/against-exec-{index}", "--",
                                                java, *program_of[against], tree=against)[0])
        if runs_too:
            drawn_s, page_bytes = draw_time(Path(runs) / "run-0")
            costs = {"this checkout": run_costs([Path(runs) / f"run-{i}" for i in range(repeat)])}
            if against is not None:
                costs[f"{against}'s"] = run_costs([Path(runs) / f"against-run-{i}" for i in range(repeat)])

    if runs_too:
        _print_run(repeat, plain_run, tool, tool_no_html, drawn_s, page_bytes, against, other_run)
    if runs_too:
        print("snapshot " + "; ".join(
            f"{label} {statistics.median(snapshots):.1f} ms ({len(snapshots)} snapshots)"
            for label, (snapshots, _) in costs.items()) + "; goal <= 3 ms (a full snapshot in arrow-intvector, median)")
        print("sample  " + "; ".join(
            f"{label} {statistics.median(samples) / 1000:.3f} ms ({len(samples)} samples)"
            for label, (_, samples) in costs.items()) + "; goal <= 0.5 ms (a timeline sample, median)")
    if "exec" in parts:
        sides = {"workbench exec": exec_times, **({f"{against}'s": other_exec} if against else {})}
        print(ratio_line("exec", plain_exec, sides, "<= 1.15x") + f" (median of {repeat})")
    if "fill" in parts:
        _print_fill(java, jdk, classpath)
    if "memory" in parts:
        print(f"memory  arrow-intvector: workbench {mib(peaks.get('workbench'))}, worker {mib(peaks.get('worker'))} "
              "peak RSS")
    if "bytecode" in parts:
        print(bytecode_line(repeat))


def _print_run(repeat: int, plain_run: list[float], tool: list[float], tool_no_html: list[float], drawn_s: float,
               page_bytes: int, against: Path | None = None, other_run: list[float] | None = None) -> None:
    sides = {"workbench run": tool, "with --no-html": tool_no_html,
             **({f"{against}'s": other_run} if against and other_run else {})}
    print(ratio_line("run", plain_run, sides, "<= 1.5x") + f" (median of {repeat}, all hold 1 s)")
    print(f"report  report.html of arrow-intvector drawn in {drawn_s * 1000:.0f} ms ({page_bytes:,} bytes); "
          "goal <= 2 s")


def _print_fill(java: str, jdk: Jdk, classpath: str) -> None:
    out = subprocess.run([java, *arrow_options(jdk), "-cp", classpath, "workbench.jvm.FillThroughput",
                          "100000000", "5"], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()]
    by_write = {}
    for write in ("unchecked", "set", "set_safe"):
        again = [int(b) / int(n) for w, kind, n, b in rows if w == write and kind == "again"]
        first = next(int(b) / int(n) for w, kind, n, b in rows if w == write and kind == "first")
        by_write[write] = f"{write} {first:.2f} GB/s first, {statistics.median(again):.2f} again"
    print(f"fill    100M ints (400 MB): {'; '.join(by_write.values())} (median of 5); goal >= 4 GB/s")


def scale() -> None:
    with tempfile.TemporaryDirectory() as runs:
        run_dir = Path(runs) / "8g"
        # Exit 1 (an expectation failed) still has its report: it is printed with the figures.
        elapsed, big = workbench("run", "intvector-8g", "--quiet", "--out", str(run_dir), ok=(0, 1))
        report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        drawn_s, page_bytes = draw_time(run_dir, repeat=3)
    costs = [s["cost_ms"] for s in report["snapshots"]]
    arrow_peak = max((s["arrow"] or {}).get("peak_bytes", 0) for s in report["snapshots"])
    fills = [r["gb_per_s"] for r in report["step_results"] if r["event"] == "fill"]
    print(f"scale   intvector-8g: wall {elapsed:.1f} s; Arrow peak {arrow_peak / GiB:.2f} GiB; peak RSS worker "
          f"{mib(big.get('worker'))}, workbench {mib(big.get('workbench'))}; snapshot median "
          f"{statistics.median(costs):.1f} ms (max {max(costs):.1f}); report.html drawn in {drawn_s * 1000:.0f} ms "
          f"({page_bytes:,} bytes); fills {min(fills):.1f}-{max(fills):.1f} GB/s; status {report['status']}, "
          f"{sum(1 for e in report['expectations'] if not e['ok'])} expectation(s) failed")

if __name__ == "__main__":
    main()
