"""What the C probe and the Java agent answer over their sockets, typed; both replies are one JSON object.

The probe's ``stats`` (native/probe/probe.c) and the agent's ``stats`` (jvm/.../agent/Stats.java) are read into
these classes by their clients, so a changed or damaged reply fails in one place with a clear message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError


class BadReply(ValueError):
    """A reply that is not what that side's protocol says."""


@dataclass(frozen=True)
class ProbeStats:
    """The probe's ``stats``: the allocator's six figures (None where it has none), its own names under ``raw``."""

    backend: str
    pid: int | None = None
    version: str | None = None
    library: str | None = None
    t_ns: int | None = None
    allocated_bytes: int | None = None
    active_bytes: int | None = None
    metadata_bytes: int | None = None
    resident_bytes: int | None = None
    mapped_bytes: int | None = None
    retained_bytes: int | None = None
    raw: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MemoryUsage:
    used_bytes: int | None = None
    committed_bytes: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class BufferPool:
    count: int | None = None
    memory_used_bytes: int | None = None
    total_capacity_bytes: int | None = None


@dataclass(frozen=True)
class GcCounts:
    name: str
    count: int | None = None
    time_ms: int | None = None


@dataclass(frozen=True)
class AgentStats:
    """The agent's ``stats``: NMT's summary text (None when NMT is off, with ``nmt_error`` saying why), the JVM's
    own view of heap, non-heap and buffer pools, its collectors and threads."""

    pid: int
    java_version: str | None = None
    vm_name: str | None = None
    t_ms: int | None = None
    nmt: str | None = None
    nmt_error: str | None = None
    heap: MemoryUsage | None = None
    non_heap: MemoryUsage | None = None
    buffer_pools: dict[str, BufferPool] = field(default_factory=dict)
    gc: list[GcCounts] = field(default_factory=list)
    threads: int | None = None

    def runtime(self) -> dict[str, Any]:
        """heap, non_heap, buffer_pools, gc and threads as plain data, for the report's ``jvm_runtime``."""
        data = asdict(self)
        return {key: data[key] for key in ("heap", "non_heap", "buffer_pools", "gc", "threads")}


_ADAPTERS: dict[str, TypeAdapter[Any]] = {"probe": TypeAdapter(ProbeStats), "agent": TypeAdapter(AgentStats)}


def _read(kind: str, data: object, who: str) -> Any:
    if not isinstance(data, dict):
        raise BadReply(f"{who} answered {str(data)[:80]!r}, not a JSON object")
    try:
        return _ADAPTERS[kind].validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise BadReply(f"{who} answered a bad {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def probe_stats(data: object) -> ProbeStats:
    """The probe's ``stats`` reply; BadReply when it is not one."""
    stats: ProbeStats = _read("probe", data, "the allocator probe")
    return stats


def agent_stats(data: object) -> AgentStats:
    """The agent's ``stats`` reply; BadReply when it is not one."""
    stats: AgentStats = _read("agent", data, "the Java agent")
    return stats
