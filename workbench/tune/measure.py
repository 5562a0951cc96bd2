"""One trial of `workbench tune`: a configuration run N times, each in a fresh worker (or a fresh program), and
what it measured: memory (peak and idle anonymous RSS; anonymous RSS, allocator resident and retained at each
snapshot) and speed (the scenario's churn throughput, else its steps' wall time, or the program's wall time),
each figure with its median and min-max over the runs."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from workbench.figures import BY_KEY
from workbench.protocol.events import ChurnDone, Event, SamplerStopped
from workbench.report.model import Report, report_to_json
from workbench.report.repeats import with_repeats
from workbench.report.timeline import read_samples
from workbench.run.run_dir import RunDir, run_dir_name
from workbench.scenario.model import ChurnStep, RepeatStep, Scenario, ThreadsStep
from workbench.toolchain.allocators import AllocatorChoice

SpeedKind = Literal["throughput", "wall"]
# The figures kept per snapshot for every trial (the per-allocator tables and tune.json).
SNAPSHOT_FIGURES = ("process.anon_rss_bytes", "allocator.resident_bytes", "allocator.retained_bytes")
MEMORY_FIGURES = ("peak_anon_rss_bytes", "idle_anon_rss_bytes")


@dataclass(frozen=True)
class Spread:
    """One figure over a trial's runs: the median (the lower middle value, one a run measured) and min-max."""

    median: float | None
    min: float | None
    max: float | None
    values: list[float | None]

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        values = list(values)
        measured = [v for v in values if v is not None]
        if not measured:
            return cls(None, None, None, values)
        return cls(statistics.median_low(measured), min(measured), max(measured), values)


@dataclass(frozen=True)
class TrialResult:
    spec: str  # NAME@key:value,...
    status: Literal["ok", "failed", "interrupted"]
    error: str | None
    run_dir: str
    runs: list[str]
    memory: dict[str, Spread]  # MEMORY_FIGURES
    speed: Spread | None  # allocations per second (throughput) or milliseconds (wall)
    snapshots: dict[str, dict[str, Spread]]  # label -> SNAPSHOT_FIGURES
    environment: dict[str, str] = field(default_factory=dict)  # LD_PRELOAD and the settings' variables
    settings: list[dict[str, Any]] = field(default_factory=list)  # what the allocator said it uses

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        def spread(value: dict[str, Any] | None) -> Spread | None:
            return Spread(**value) if value is not None else None

        return cls(
            spec=data["spec"], status=data["status"], error=data.get("error"), run_dir=data["run_dir"],
            runs=list(data["runs"]), memory={k: Spread(**v) for k, v in data["memory"].items()},
            speed=spread(data.get("speed")),
            snapshots={label: {k: Spread(**v) for k, v in figures.items()}
                       for label, figures in data.get("snapshots", {}).items()},
            environment=dict(data.get("environment", {})), settings=list(data.get("settings", [])),
        )


class Target(Protocol):
    """What is tuned: a scenario, or an unmodified program."""

    @property
    def name(self) -> str:
        """For the tune directory's name."""

    @property
    def speed(self) -> SpeedKind:
        """What speed is measured: churn throughput, or wall time."""

    def check(self, spec: str) -> None:
        """BadInput (exit 2) unless a run under ``spec`` can start; starts nothing."""

    def run(self, spec: str, run_dir: Path, repeat: int, on_run: Callable[[int], None] | None) -> TrialResult:
        """``repeat`` runs under ``spec`` into ``run_dir`` (each in ``repeat-K``), measured."""


def churn_seconds(steps: Iterable[Any], times: int = 1) -> float:
    """How long a scenario's churn steps run in all (a repeat runs its churn again; threads run theirs at once)."""
    total = 0.0
    for step in steps:
        if isinstance(step, ChurnStep):
            total += times * step.churn.duration / 1000
        elif isinstance(step, RepeatStep):
            total += churn_seconds(step.repeat.steps, times * step.repeat.times)
        elif isinstance(step, ThreadsStep):
            total += churn_seconds(step.threads.steps, times)
    return total


def _peak_anon_rss(report: Report, run_dir: str) -> int | None:
    figure = BY_KEY["process.anon_rss_bytes"]
    values = [figure.value(s) for s in report.snapshots]
    samples = Path(run_dir) / "samples.jsonl"
    if samples.is_file():
        values += [s.get("anon_rss_bytes") for s in read_samples(samples)]  # type: ignore[misc]
    measured = [v for v in values if isinstance(v, int)]
    return max(measured) if measured else None


def measure(spec: str, reports: list[Report], dirs: list[str], speeds: list[float | None], run_dir: Path,
            interrupted: bool) -> TrialResult:
    """The trial's figures from its runs' reports; the combined report (the median run's, with every run's
    figures: ``repeats``) is written as the trial's report.json."""
    combined = dataclasses.replace(with_repeats(reports, dirs), run_dir=str(run_dir))
    from workbench._files import write_atomically

    write_atomically(run_dir / "report.json", report_to_json(combined))
    anon = BY_KEY["process.anon_rss_bytes"]
    memory = {
        "peak_anon_rss_bytes": Spread.of(_peak_anon_rss(r, d) for r, d in zip(reports, dirs)),
        "idle_anon_rss_bytes": Spread.of(anon.value(r.snapshots[-1]) if r.snapshots else None for r in reports),
    }
    labels = list(dict.fromkeys(s.label for r in reports for s in r.snapshots))
    snapshots = {}
    for label in labels:
        per_figure = {}
        for key in SNAPSHOT_FIGURES:
            values: list[float | None] = []
            for report in reports:
                try:
                    value = BY_KEY[key].value(report.snapshot(label))
                except KeyError:
                    value = None
                values.append(value)
            per_figure[key] = Spread.of(values)
        snapshots[label] = per_figure
    failed = next((r for r in reports if r.status != "ok"), None)
    status: Literal["ok", "failed", "interrupted"] = "interrupted" if interrupted else \
        ("failed" if failed is not None else "ok")
    error = None
    if failed is not None and failed.error is not None:
        error = f"{failed.error.type}: {failed.error.message}"
    allocator = combined.allocator
    return TrialResult(
        spec=spec, status=status, error=error, run_dir=str(run_dir), runs=dirs, memory=memory,
        speed=Spread.of(speeds), snapshots=snapshots, environment=dict(allocator.environment),
        settings=[dataclasses.asdict(s) for s in allocator.settings or []],
    )


def repeated(spec: str, run_dir: Path, repeat: int, on_run: Callable[[int], None] | None, name: str,
             allocator: AllocatorChoice, once: Callable[[RunDir], tuple[Report, float | None]]) -> TrialResult:
    """``repeat`` runs by ``once`` (a report and its speed), each into its own ``repeat-K`` run directory; stops at
    an interrupt. The trial's figures are measured over them."""
    reports: list[Report] = []
    dirs: list[str] = []
    speeds: list[float | None] = []
    for index in range(repeat):
        if on_run is not None:
            on_run(index)
        sub = RunDir.claim(run_dir_name(name, allocator, None), run_dir / f"repeat-{index + 1}")
        report, speed = once(sub)
        reports.append(report)
        dirs.append(str(sub.path))
        speeds.append(speed)
        if report.interrupted_by is not None:
            break
    return measure(spec, reports, dirs, speeds, run_dir, reports[-1].interrupted_by is not None)


@dataclass(frozen=True)
class ScenarioTarget:
    """A scenario, run as `workbench run` runs it."""

    scenario: str
    hold_ms: int | None = None
    nmt: str | None = None
    trust: bool = False
    java_home: str | None = None

    @property
    def name(self) -> str:
        return Path(self.scenario).stem

    @property
    def speed(self) -> SpeedKind:
        return "throughput" if churn_seconds(self._loaded().steps) > 0 else "wall"

    def _loaded(self) -> Scenario:
        from workbench.scenario import load_scenario, resolve_scenario

        return load_scenario(resolve_scenario(self.scenario))

    def _prepare(self, spec: str) -> Any:
        from workbench.run.scenario import RunRequest, prepare

        return prepare(RunRequest(scenario=self.scenario, allocator=spec, java_home=self.java_home,
                                  hold_ms=self.hold_ms, trust=self.trust, nmt=self.nmt))

    def check(self, spec: str) -> None:
        self._prepare(spec)

    def run(self, spec: str, run_dir: Path, repeat: int, on_run: Callable[[int], None] | None) -> TrialResult:
        from workbench.run.scenario import execute

        prepared = self._prepare(spec)
        seconds = churn_seconds(prepared.scenario.steps)

        def once(sub: RunDir) -> tuple[Report, float | None]:
            events: list[Event] = []
            report = execute(prepared, sub, quiet=True, on_event=events.append, html=False)
            if report.status != "ok":
                return report, None
            if seconds > 0:
                return report, sum(e.allocations for e in events if isinstance(e, ChurnDone)) / seconds
            stopped = next((e for e in events if isinstance(e, SamplerStopped)), None)
            return report, stopped.steps_ms if stopped is not None else None

        return repeated(spec, run_dir, repeat, on_run, self.name, prepared.allocator, once)


@dataclass(frozen=True)
class ProgramTarget:
    """An unmodified program, run as `workbench exec` runs it; speed is its wall time."""

    command: tuple[str, ...]
    nmt: str = "summary"
    interval_ms: int = 100
    name: str = "exec"
    speed: SpeedKind = "wall"

    def _prepare(self, spec: str) -> Any:
        from workbench.run.program import prepare_program

        return prepare_program(list(self.command), spec, None, self.interval_ms, quiet=True, nmt=self.nmt)

    def check(self, spec: str) -> None:
        self._prepare(spec)

    def run(self, spec: str, run_dir: Path, repeat: int, on_run: Callable[[int], None] | None) -> TrialResult:
        from workbench.run.program import run_program

        program = self._prepare(spec)

        def once(sub: RunDir) -> tuple[Report, float | None]:
            began = time.monotonic()
            result = run_program(program, sub, html=False)
            wall_ms = round((time.monotonic() - began) * 1000, 3)
            report = result.report
            if result.exit_code != 0 and report.error is None:
                report = dataclasses.replace(report, status="failed")
            return report, wall_ms if report.status == "ok" else None

        return repeated(spec, run_dir, repeat, on_run, "exec", program.allocator, once)
