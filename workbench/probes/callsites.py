"""The call-site layer (``--profile``): live native memory by allocating stack at each snapshot, with an owner.

Measured by async-profiler (every malloc and free, sampled by bytes, with Java and native frames), cut at each
snapshot by the Java reader and classified against the Arrow layer by :mod:`workbench.report.callsites`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Who keeps a call site's live bytes (docs/report.md#native-call-sites).
Owner = Literal["pool-retained", "arrow-open", "direct-buffer", "jvm", "workbench", "other"]
OWNERS: tuple[Owner, ...] = ("pool-retained", "arrow-open", "direct-buffer", "jvm", "workbench", "other")


@dataclass(frozen=True)
class CallSite:
    """One allocating stack: its bytes allocated and not yet freed at a snapshot, and who keeps them."""

    frames: list[str]  # root first; Java frames as package.Class.method, native ones as their symbol
    name: str  # what allocated it, in a few words: "PoolArena$DirectArena.newChunk under BaseFixedWidthVector..."
    bytes: int  # live at the snapshot (estimated from samples when the interval is above 0)
    count: int  # live allocations recorded
    delta_bytes: int  # since the previous snapshot
    delta_count: int
    owner: Owner
    detail: str = ""  # what of the owner: "compiler", "class loading", the pool's allocation manager, ...
    step: int | None = None  # the step that allocated most of these bytes (the first of equals); None: before the steps
    steps: list[int] = field(default_factory=list)  # every step that allocated some of them (-1: before the steps)
    step_kind: str | None = None
    arrow_accounted_bytes: int | None = None  # Arrow-allocated sites: what of these bytes Arrow still accounts
    leak: bool = False  # at the last snapshot: live, and nothing that will free it owns it
    kinds: str = ""  # one letter per frame, root first: J Java, N native, C C++, K kernel


@dataclass(frozen=True)
class ArrowBuffer:
    """An Arrow buffer still open at a snapshot, as Arrow's debug allocator recorded it (``--profile-buffers``),
    joined with the native call site whose live malloc holds it."""

    allocator: str  # the Arrow allocator that accounts it
    ledger: int  # Arrow's ledger id: one allocation from the allocation manager
    bytes: int  # the ledger's size
    buffers: int  # ArrowBufs open on it (slices included)
    address: int  # the lowest of its buffers' memory addresses
    frames: list[str]  # the Java stack Arrow recorded when it allocated it, root first, package.Class.method
    allocated_at: str  # the first frame of that stack outside Arrow's memory package, short
    step: int | None  # the step Arrow allocated it in (its log's time against the step marks); None: before them
    step_kind: str | None = None
    join: Literal["address", "stack"] | None = None  # how the call site was found: the malloc's range holds
    # ``address``, or (no such malloc recorded) the live Arrow-owned stack sharing the most Java frames; None: neither
    call_site: str | None = None  # its name, as in ``sites``
    call_site_owner: Owner | None = None
    chunk_bytes: int | None = None  # join "address": the malloc holding it, as asked for
    native_step: int | None = None  # join "address": the step that malloc'd that chunk (a pool's chunk: maybe earlier)


@dataclass(frozen=True)
class SnapshotCallSites:
    """A snapshot's call sites: the totals by owner, the top stacks by live bytes and by growth."""

    live_bytes: int
    live_count: int
    owners: dict[str, int]  # owner -> live bytes
    sites: list[CallSite]  # the top stacks by live bytes
    growth: list[CallSite]  # the top stacks by bytes grown since the previous snapshot
    stacks: int  # how many stacks had live bytes (all of them are in ``collapsed``)
    collapsed: str  # profile/collapsed/<label>.txt: every live stack, "root;...;leaf bytes"
    arrow_buffers: list[ArrowBuffer] | None = None  # --profile-buffers: every open Arrow ledger; None: not listed


@dataclass(frozen=True)
class ProfileSection:
    """How the call sites were recorded, and what was left at the end."""

    tool: str  # "async-profiler 4.2"
    interval_bytes: int  # one malloc recorded per this many bytes; 0: every one
    recording: str  # the JFR
    callsites: str  # the reader's full output
    mallocs: int = 0
    frees: int = 0
    nmt_header_bytes: int = 0  # taken off each malloc through libjvm's os::malloc
    marks: int = 0
    marks_on_recording_clock: int = 0
    leaks: list[CallSite] = field(default_factory=list)  # the last snapshot's sites that nothing will free
    error: str | None = None  # why there are no call sites (the recording could not be stopped or read)
    # --profile-buffers: Arrow's debug allocator was on (-Darrow.memory.debug.allocator=true). It keeps a log and a
    # stack per buffer on the Java heap: the run measured that too.
    arrow_debug: bool = False
