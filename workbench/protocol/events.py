"""The worker's events: one JSON line each on the events pipe, written and flushed one by one.

The worker (``workbench.worker``) encodes them, the run (``workbench.run.scenario``) decodes them and the report is
built from the decoded, typed events. A line is ``{"event": <kind>, ...fields}``; both ends use these classes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields, is_dataclass
from typing import ClassVar, Union

from pydantic import TypeAdapter, ValidationError

from workbench.probes.allocator import AllocatorSnapshot, ConfSetting, SizeClass
from workbench.probes.arrow import ArrowSnapshot
from workbench.probes.nmt import NmtSummary
from workbench.probes.process import ProcessSnapshot
from workbench.probes.regions import AddressAttribution


@dataclass(frozen=True)
class AllocatorDetected:
    """Which allocator answers malloc in the worker (found from its symbols, not taken from what was asked)."""

    kind: ClassVar[str] = "allocator"
    backend: str
    library: str | None
    version: str | None
    config_prof: bool | None
    config_stats: bool | None
    settings: list[ConfSetting] | None = None  # MALLOC_CONF's pairs, read back from jemalloc


@dataclass(frozen=True)
class JvmStarted:
    kind: ClassVar[str] = "jvm"
    version: str
    vm: str
    nmt: str  # "summary", "detail", or "off: <why>"
    pyarrow_memory_pool: str | None
    jpype_gc_link: bool  # JPype's mallinfo()-driven System.gc() left in place


@dataclass(frozen=True)
class StepStarted:
    kind: ClassVar[str] = "step"
    index: int
    step: str  # the step's kind: "allocate", "hold", ...
    argument: str | None  # shown in the progress line (a label, a name, a duration)


@dataclass(frozen=True)
class SnapshotTaken:
    kind: ClassVar[str] = "snapshot"
    label: str
    t_ms: float
    cost_ms: float
    probe_ms: dict[str, float]
    arrow: ArrowSnapshot | None
    nmt: NmtSummary | None
    allocator: AllocatorSnapshot | None
    process: ProcessSnapshot | None
    size_classes: list[SizeClass] | None = None  # the allocator's live size classes (jemalloc only)
    attribution: AddressAttribution | None = None  # anonymous RSS by owner, from the mappings' addresses
    # The allocator's allocated at the end of taking this snapshot minus at its start: what the snapshot itself
    # left allocated (other threads' mallocs meanwhile included); None: not measured.
    own_allocated_bytes: int | None = None


@dataclass(frozen=True)
class VectorChecked:
    """A ``verify`` step: pyarrow read the vector zero-copy (same address) and both sides summed it."""

    kind: ClassVar[str] = "check"
    vector: str
    zero_copy: bool
    sum: int
    java_sum: int | None
    pyarrow_address: int
    java_address: int


@dataclass(frozen=True)
class LeakFound:
    kind: ClassVar[str] = "leak"
    allocator: str
    bytes: int
    detail: str  # Arrow's toVerboseString()


@dataclass(frozen=True)
class ChurnDone:
    kind: ClassVar[str] = "churn"
    allocations: int
    survivors: int
    keep: str | None


@dataclass(frozen=True)
class FillDone:
    """A ``fill`` or ``set_safe`` step: how its values were written and how fast, its runs inside a ``repeat`` or
    ``threads`` step added up. bytes: the values' (count x the width; variable width: offsets and data)."""

    kind: ClassVar[str] = "fill"
    vector: str
    write: str  # "unchecked", "set" or "set_safe" (a VarCharVector is always set_safe)
    times: int  # runs of the step
    count: int  # values written, all runs
    bytes: int
    seconds: float  # the writes' own time, all runs (threads' times added, not overlapped)
    gb_per_s: float | None  # bytes / seconds / 1e9; None when the writes took no measurable time


@dataclass(frozen=True)
class SamplerStopped:
    kind: ClassVar[str] = "sampler"
    samples: int
    cost_ms: float
    interval_ms: int
    steps_ms: float


@dataclass(frozen=True)
class StepFailed:
    """A step failed in the JVM or pyarrow (``bug`` False), or the worker itself failed (``bug`` True)."""

    kind: ClassVar[str] = "error"
    type: str
    message: str
    step: int | None = None
    step_kind: str | None = None
    bug: bool = False


@dataclass(frozen=True)
class Done:
    kind: ClassVar[str] = "done"


@dataclass(frozen=True)
class JvmCounters:
    """The JVM's collections and JPype's own count of the ones it triggered, at the end of the steps."""

    kind: ClassVar[str] = "jvm-counters"
    gc_collections: int  # all collectors (GarbageCollectorMXBean), since start
    gc_time_ms: int
    jpype_gc_triggered: int  # _jpype.gcStats()["triggered"]


@dataclass(frozen=True)
class ProfileStopped:
    """``--profile``: the worker stopped async-profiler's recording after the steps (``error`` when it could not)."""

    kind: ClassVar[str] = "profile"
    recording: str  # the JFR, complete once stopped
    marks: str  # profile/marks.tsv: where each step and snapshot began
    error: str | None = None
    message: str = ""  # what async-profiler said


Event = Union[AllocatorDetected, JvmStarted, StepStarted, SnapshotTaken, VectorChecked, LeakFound, ChurnDone,
              FillDone, SamplerStopped, StepFailed, Done, JvmCounters, ProfileStopped]
_KINDS: dict[str, type[Event]] = {cls.kind: cls for cls in Event.__args__}  # type: ignore[attr-defined]


@functools.cache
def _adapter(kind: str) -> TypeAdapter[Event]:
    # Built on first use: the worker only encodes, and the run builds them while the worker starts.
    return TypeAdapter(_KINDS[kind])


class BadEvent(ValueError):
    """A line that is not one of the events (cut short by a dying worker, or from a different version)."""


def _fields(value: object) -> dict[str, object]:
    """A dataclass's fields, one level deep (the encoder recurses): the same JSON as ``asdict``, without its deep
    copy of every value (a snapshot's event is thousands of objects, made and freed per snapshot)."""
    names = _FIELD_NAMES.get(type(value))
    if names is None:
        if not is_dataclass(value) or isinstance(value, type):
            raise TypeError(f"{type(value).__name__} is not an event field")
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in fields(value))
    return {name: getattr(value, name) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def encode(event: Event) -> str:
    """The event as one JSON line (with its newline)."""
    return json.dumps({"event": event.kind, **_fields(event)}, default=_fields) + "\n"


def decode(line: str) -> Event:
    """The event of one line; BadEvent when it is none."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadEvent(f"not JSON: {error.msg}") from None
    if not isinstance(data, dict) or data.get("event") not in _KINDS:
        raise BadEvent(f"not a worker event: {line[:80]!r}")
    kind = data.pop("event")
    try:
        event: Event = _adapter(kind).validate_python(data)
    except ValidationError as error:
        raise BadEvent(f"a {kind!r} event with bad fields: {error.errors()[0]['msg']}") from None
    return event
