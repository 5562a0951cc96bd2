"""The report from the worker's event stream: what was measured, plus deltas against the baseline."""

from __future__ import annotations

import dataclasses
from typing import Any

from workbench.protocol.events import (
    AllocatorDetected,
    ChurnDone,
    Done,
    Event,
    FillDone,
    JvmCounters,
    JvmStarted,
    LeakFound,
    SamplerStopped,
    SnapshotTaken,
    StepFailed,
    VectorChecked,
)
from workbench.report.ledger import reconcile
from workbench.report.model import (
    AllocatorSection,
    Checks,
    JvmSection,
    Leak,
    Report,
    RunError,
    SamplerSection,
    ScenarioSection,
    Snapshot,
    address_view,
    byte_figures,
)

BASELINE = "baseline"


def with_deltas(snapshots: list[Snapshot], allocation_manager: str) -> tuple[list[Snapshot], str | None]:
    """Each snapshot with its deltas against the one labelled ``baseline`` (else the first) and its ledger."""
    if not snapshots:
        return snapshots, None
    base = next((s for s in snapshots if s.label == BASELINE), snapshots[0])
    base_figures = byte_figures(base)
    base_view = address_view(base)
    result = []
    for snapshot in snapshots:
        figures = byte_figures(snapshot)
        deltas = {k: v - base_figures[k] for k, v in figures.items() if k in base_figures}
        backend = snapshot.allocator.backend if snapshot.allocator else None
        result.append(dataclasses.replace(snapshot, deltas=deltas, reconciliation=reconcile(
            deltas, allocation_manager, base.label, backend, address_view(snapshot), base_view)))
    return result, base.label


def build_report(
    events: list[Event],
    scenario: ScenarioSection,
    allocator: AllocatorSection,
    jvm: JvmSection,
    worker_exit_code: int | None,
    worker_log: str | None,
    failure: RunError | None = None,
    run_dir: str | None = None,
    hs_err: str | None = None,
    interrupted_by: str | None = None,
) -> Report:
    """Assemble the report from the worker's events; ``failure`` is the run's own finding (signal, timeout,
    allocator mismatch)."""
    snapshots: list[Snapshot] = []
    checks = Checks()
    error = None
    done = False
    step_results: list[dict[str, Any]] = []
    sampler = None
    leaks: list[Leak] = []
    for event in events:
        if isinstance(event, AllocatorDetected):
            allocator = dataclasses.replace(
                allocator, backend=event.backend, detected_library=event.library, version=event.version,
                config_prof=event.config_prof, config_stats=event.config_stats,
                settings=event.settings if event.settings is not None else allocator.settings,
            )
        elif isinstance(event, JvmStarted):
            jvm = dataclasses.replace(jvm, version=event.version, vm=event.vm, nmt=event.nmt,
                                      pyarrow_memory_pool=event.pyarrow_memory_pool, jpype_gc_link=event.jpype_gc_link)
        elif isinstance(event, JvmCounters):
            jvm = dataclasses.replace(jvm, gc_collections=event.gc_collections, gc_time_ms=event.gc_time_ms,
                                      jpype_gc_triggered=event.jpype_gc_triggered)
        elif isinstance(event, SnapshotTaken):
            snapshots.append(Snapshot(
                label=event.label, t_ms=event.t_ms, cost_ms=event.cost_ms, probe_ms=dict(event.probe_ms),
                arrow=event.arrow, nmt=event.nmt, allocator=event.allocator, process=event.process,
                size_classes=event.size_classes, attribution=event.attribution,
                own_allocated_bytes=event.own_allocated_bytes,
            ))
        elif isinstance(event, VectorChecked):
            checks = Checks(zero_copy=event.zero_copy, sum=event.sum, java_sum=event.java_sum, vector=event.vector,
                            pyarrow_address=event.pyarrow_address, java_address=event.java_address)
        elif isinstance(event, StepFailed):
            error = RunError(type=event.type, message=event.message, step=event.step, kind=event.step_kind)
        elif isinstance(event, LeakFound):
            leaks.append(Leak(allocator=event.allocator, bytes=event.bytes, detail=event.detail))
        elif isinstance(event, (ChurnDone, FillDone)):
            step_results.append({"event": event.kind, **dataclasses.asdict(event)})
        elif isinstance(event, SamplerStopped):
            sampler = SamplerSection(
                interval_ms=event.interval_ms, samples=event.samples, cost_ms=event.cost_ms, steps_ms=event.steps_ms,
                overhead_fraction=round(event.cost_ms / event.steps_ms, 6) if event.steps_ms else 0.0,
            )
        elif isinstance(event, Done):
            done = True
    # A timeout or an interrupt is the cause even when the dying worker reported something on its way out.
    error = failure if failure is not None and failure.type in ("Timeout", "Interrupted") else (error or failure)
    if error is None and not done:
        error = RunError(type="WorkerDied", message=f"the worker ended (exit code {worker_exit_code}) before the "
                                                    "scenario finished")
    snapshots, baseline = with_deltas(snapshots, jvm.allocation_manager)
    return Report(
        scenario=scenario,
        allocator=allocator,
        jvm=jvm,
        snapshots=snapshots,
        checks=checks,
        status="failed" if error else "ok",
        error=error,
        baseline=baseline,
        step_results=step_results,
        run_dir=run_dir,
        sampler=sampler,
        leaks=leaks,
        hs_err=hs_err,
        interrupted_by=interrupted_by,
        worker_exit_code=worker_exit_code,
        worker_log=worker_log,
    )
