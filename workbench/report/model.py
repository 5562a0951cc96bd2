"""The report, as frozen dataclasses; its JSON form is the contract ``workbench.report/1``."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from workbench.protocol.provenance import Provenance
from workbench.probes.allocator import AllocatorSnapshot, ConfSetting, SizeClass
from workbench.probes.arrow import ArrowSnapshot
from workbench.probes.callsites import ProfileSection, SnapshotCallSites
from workbench.probes.nmt import NmtSummary
from workbench.probes.process import ProcessSnapshot
from workbench.probes.regions import AddressAttribution
from workbench.report.expectations import ExpectationResult
from workbench.report.ledger import AddressView, Reconciliation, reconcile

SCHEMA = "workbench.report/1"
TOP_SIZE_CLASSES = 15  # how many of a snapshot's size classes the renderers show


@dataclass(frozen=True)
class ScenarioSection:
    name: str
    description: str
    source: str


@dataclass(frozen=True)
class AllocatorSection:
    name: str  # what was asked for
    library: str | None  # what was preloaded (None: nothing)
    version: str | None
    malloc_conf: str | None
    backend: str | None  # what the worker found answering malloc
    detected_library: str | None
    config_prof: bool | None
    config_stats: bool | None
    provenance: Provenance = Provenance("none")
    # Each setting: what was asked and the value the allocator says it uses (jemalloc: opt.* in the measured
    # process; glibc, tcmalloc, mimalloc: in a trial process with the same settings); effective None: not read back.
    settings: list[ConfSetting] | None = None
    spec: str | None = None  # the allocator as named, with its settings: NAME@key:value,...
    environment: dict[str, str] = field(default_factory=dict)  # LD_PRELOAD and the settings' variables, as used


def settings_line(allocator: AllocatorSection) -> str:
    """The allocator's settings as the measured process had them, and what the allocator said it uses:
    ``MALLOC_CONF narenas:2 (read back: narenas 2)``, ``GLIBC_TUNABLES glibc.malloc.arena_max=2 (...)``."""
    variables = {k: v for k, v in allocator.environment.items() if k != "LD_PRELOAD"}
    if not variables and allocator.malloc_conf:
        variables = {"MALLOC_CONF": allocator.malloc_conf}
    if not variables:
        return "settings (none)"
    shown = ", ".join(f"{key} {value}" for key, value in variables.items())
    read = [f"{s.key} {s.effective if s.effective is not None else '(not reported)'}" for s in allocator.settings or []]
    return shown + (f" (read back: {', '.join(read)})" if read else "")


@dataclass(frozen=True)
class JvmSection:
    java_home: str
    version: str | None
    vm: str | None
    options: list[str]
    allocation_manager: str
    nmt: str | None  # "summary", "detail", or "off: <why>"
    pyarrow_memory_pool: str | None
    jpype_gc_link: bool | None = None  # None: not a JPype run (exec, attach)
    gc_collections: int | None = None  # the JVM's collections at the end of the steps, all collectors
    gc_time_ms: int | None = None
    jpype_gc_triggered: int | None = None  # of them, how many JPype's GC link asked for


@dataclass(frozen=True)
class Snapshot:
    label: str
    t_ms: float
    cost_ms: float  # what taking this snapshot cost, all probes
    arrow: ArrowSnapshot | None
    nmt: NmtSummary | None
    allocator: AllocatorSnapshot | None
    process: ProcessSnapshot | None
    probe_ms: dict[str, float] = field(default_factory=dict)  # the same, per probe
    # Every byte figure of this snapshot minus the same figure at the baseline, by dotted path.
    deltas: dict[str, int] = field(default_factory=dict)
    reconciliation: Reconciliation | None = None
    # From the Java agent (`workbench exec`): heap, non_heap, buffer_pools, gc, threads.
    jvm_runtime: dict[str, Any] | None = None
    # The allocator's live size classes, most bytes first; None: not measured (only jemalloc gives them).
    size_classes: list[SizeClass] | None = None
    # The anonymous RSS split by mapping into owners (JVM regions, stacks, ...); None: not measured (exec, attach).
    attribution: AddressAttribution | None = None
    # The allocator's allocated at the end of taking this snapshot minus at its start; None: not measured.
    own_allocated_bytes: int | None = None
    # --profile: live native memory by allocating stack, with owners; None: not profiled.
    call_sites: SnapshotCallSites | None = None


@dataclass(frozen=True)
class Checks:
    zero_copy: bool | None = None
    sum: int | None = None
    java_sum: int | None = None
    vector: str | None = None
    pyarrow_address: int | None = None
    java_address: int | None = None


@dataclass(frozen=True)
class RunError:
    type: str
    message: str
    step: int | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Leak:
    """An allocator that still held memory when it was to be closed (or when the run ended)."""

    allocator: str
    bytes: int
    detail: str  # Arrow's toVerboseString(): which buffers, allocated where


@dataclass(frozen=True)
class SamplerSection:
    interval_ms: int
    samples: int
    cost_ms: float  # time the sampler thread spent taking samples
    steps_ms: float  # wall time of the scenario's steps
    overhead_fraction: float  # cost_ms / steps_ms


@dataclass(frozen=True)
class ProgramSection:
    """The program `workbench exec` ran, or the process `workbench attach` watched."""

    argv: list[str]
    pid: int
    exit_code: int | None  # None while attached to a process that outlived the attach
    sources: dict[str, str]  # layer -> where its figures came from ("probe", "agent", "jcmd")


@dataclass(frozen=True)
class FigureSpread:
    """One figure at one snapshot label over repeated runs."""

    label: str
    figure: str  # the figure's key
    values: list[int | None]  # per run, in run order; None where that run did not measure it
    median: int | None  # the lower middle of the measured values: a value one run measured
    min: int | None
    max: int | None


@dataclass(frozen=True)
class RepeatSection:
    """``--repeat N``: every run's figures; the report around it is the run at index ``shown``."""

    count: int
    runs: list[str]  # their run directories
    statuses: list[str]
    shown: int  # the median run (by anonymous RSS at the last snapshot)
    figures: list[FigureSpread]


@dataclass(frozen=True)
class Report:
    scenario: ScenarioSection
    allocator: AllocatorSection
    jvm: JvmSection
    snapshots: list[Snapshot]
    checks: Checks
    status: str  # "ok" | "failed"
    error: RunError | None = None
    baseline: str | None = None  # the label deltas are taken against
    step_results: list[dict[str, Any]] = field(default_factory=list)  # what steps report, e.g. churn counts
    worker_exit_code: int | None = None
    worker_log: str | None = None
    run_dir: str | None = None
    sampler: SamplerSection | None = None
    leaks: list[Leak] = field(default_factory=list)
    hs_err: str | None = None  # the JVM's crash report, when it crashed
    interrupted_by: str | None = None  # "SIGINT" or "SIGTERM" when the user stopped the run
    program: ProgramSection | None = None
    expectations: list[ExpectationResult] = field(default_factory=list)
    repeats: RepeatSection | None = None
    profile: ProfileSection | None = None  # --profile: how the call sites were recorded, the leaks at the end
    schema: str = SCHEMA

    @property
    def expectations_failed(self) -> list[ExpectationResult]:
        return [e for e in self.expectations if not e.ok]

    def snapshot(self, label: str) -> Snapshot:
        """The snapshot with this label (KeyError if there is none)."""
        for snapshot in self.snapshots:
            if snapshot.label == label:
                return snapshot
        raise KeyError(label)


_ADAPTER = TypeAdapter(Report)


def report_to_dict(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = _ADAPTER.dump_python(report, mode="json")
    # The schema name first, so a reader knows the contract before anything else.
    return {"schema": data.pop("schema"), **data}


def report_to_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2) + "\n"


def report_from_dict(data: dict[str, Any]) -> Report:
    """A report read back from JSON (e.g. by tests or `workbench report`).

    A report written before ledgers held figures and codes only (its lines had formatted sentences) gets its
    ledgers again from its deltas, which is how they were made.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object with schema {SCHEMA!r}, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"expected schema {SCHEMA!r}, got {data.get('schema')!r}")
    snapshots = data.get("snapshots")
    old_ledgers = isinstance(snapshots, list) and any(
        isinstance(s, dict) and isinstance(s.get("reconciliation"), dict) and "explanation" in s["reconciliation"]
        for s in snapshots
    )
    if not old_ledgers:
        return _ADAPTER.validate_python(data)
    assert isinstance(snapshots, list)
    stripped = [{**s, "reconciliation": None} if isinstance(s, dict) else s for s in snapshots]
    report = _ADAPTER.validate_python({**data, "snapshots": stripped})
    baseline = report.baseline or (report.snapshots[0].label if report.snapshots else "")
    return dataclasses.replace(report, snapshots=[
        dataclasses.replace(s, reconciliation=reconcile(s.deltas, report.jvm.allocation_manager, baseline))
        for s in report.snapshots
    ])


_LAYERS = ("arrow", "nmt", "allocator", "process")


@functools.cache
def snapshot_adapter() -> TypeAdapter[Snapshot]:
    """Built once (20 ms here; the report asks for every snapshot's figures twice), by the thread that prepares a
    run's report (run_dir.prepare_report_writers, exec's import_reading) while the measured program runs."""
    return TypeAdapter(Snapshot)


def byte_figures(snapshot: Snapshot) -> dict[str, int]:
    """Every integer byte figure of a snapshot by dotted path (``nmt.categories.Other.committed_bytes``)."""
    figures: dict[str, int] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, int) and not isinstance(value, bool) and prefix.endswith("_bytes"):
            figures[prefix] = value

    data = snapshot_adapter().dump_python(snapshot, mode="python", include=set(_LAYERS))
    for layer in _LAYERS:
        walk(layer, data[layer])
    return figures


def address_view(snapshot: Snapshot) -> AddressView | None:
    """What the ledger by owner needs of a snapshot; None when it was not attributed by address."""
    if snapshot.attribution is None:
        return None
    figures = byte_figures(snapshot)
    if snapshot.allocator is not None:  # the backend's own figures by their own names (glibc's hblkhd, ...)
        figures.update({f"allocator.raw.{name}": value for name, value in snapshot.allocator.raw.items()})
    return AddressView(snapshot.attribution, figures, snapshot.size_classes)
