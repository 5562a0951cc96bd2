"""``--profile-buffers``: which Arrow buffers are open at each snapshot (Arrow's debug allocator recorded each one's
stack), joined with the native call site holding them.

The join is by address where the recording has the malloc: the live malloc whose range ``[address, address + size)``
holds the buffer's memory address (the reader does this, ``NativeCallSites``); else by stack: the live Arrow-owned
stack that shares the most Java frames with the stack Arrow recorded. Each buffer's step is Arrow's own: the time its
log says it was allocated, against the steps' marks.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from pathlib import Path

from workbench.probes.callsites import ArrowBuffer, CallSite, SnapshotCallSites
from workbench.protocol.callsites import RecordedBuffer, Recording
from workbench.report.callsites import short_frame, stack_name

_ARROW_MEMORY = ("org.apache.arrow.memory.", "java.lang.Thread.getStackTrace")


@dataclass(frozen=True)
class Ledger:
    """One line of ``profile/arrow-buffers.tsv``: an open ledger at a snapshot, as the worker read it."""

    label: str
    allocator: str
    ledger: int
    bytes: int
    address: int
    buffers: int
    created_ns: int  # wall clock; 0: Arrow recorded no time
    frames: list[str]


def read_ledgers(path: Path) -> list[Ledger]:
    """The worker's ledger lines (none when the file is missing: no snapshot found an open buffer)."""
    if not path.is_file():
        return []
    ledgers = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) != 8:
            continue  # a line cut short by a dying worker
        label, allocator, ledger, size, address, buffers, created, frames = fields
        ledgers.append(Ledger(label, allocator, int(ledger), int(size), int(address), int(buffers), int(created),
                              frames.split(";") if frames else []))
    return ledgers


def read_step_marks(path: Path) -> list[tuple[int, int]]:
    """``(wall-clock ns, step index)`` of each step's start, in time order, from ``profile/marks.tsv``."""
    if not path.is_file():
        return []
    marks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0] == "step":
            marks.append((int(fields[2]), int(fields[1])))
    return sorted(marks)


def _step_at(marks: list[tuple[int, int]], created_ns: int) -> int | None:
    if not created_ns:
        return None
    at = bisect.bisect_right(marks, (created_ns, 1 << 62)) - 1
    return marks[at][1] if at >= 0 else None


def allocated_at(frames: list[str]) -> str:
    """The innermost frame of Arrow's recorded stack outside Arrow's memory package, short."""
    outside = [f for f in frames if not f.startswith(_ARROW_MEMORY)]
    return short_frame(outside[-1]) if outside else (short_frame(frames[-1]) if frames else "?")


def _by_stack(ledger: Ledger, recording: Recording, snapshot: int) -> int | None:
    """The live stack (Arrow's, or Netty's pool) sharing the most Java frames with the stack Arrow recorded."""
    wanted = {f for f in ledger.frames if not f.startswith(_ARROW_MEMORY)}
    best: tuple[int, int, int] | None = None  # (shared frames, bytes, stack)
    for site in recording.snapshots[snapshot].sites:
        frames = recording.stacks[site.stack].frames
        if not any(f.startswith(("org.apache.arrow.", "io.netty.buffer.")) for f in frames):
            continue
        shared = len(wanted.intersection(frames))
        if shared and (best is None or (shared, site.bytes) > best[:2]):
            best = (shared, site.bytes, site.stack)
    return best[2] if best else None


def _owner_of(sites: SnapshotCallSites, frames: list[str]) -> CallSite | None:
    return next((s for s in sites.sites if s.frames == frames), None)


def join_buffers(by_label: dict[str, SnapshotCallSites], recording: Recording, ledgers: list[Ledger],
                 marks: list[tuple[int, int]], step_kinds: dict[int, str]) -> dict[str, SnapshotCallSites]:
    """Each snapshot's call sites with ``arrow_buffers``: every ledger the worker found open there, with its step
    and the native call site holding it (and how that was found)."""
    result = dict(by_label)
    for index, recorded in enumerate(recording.snapshots):
        sites = by_label.get(recorded.label)
        if sites is None:
            continue
        joined = {b.ledger: b for b in recorded.buffers or []}
        buffers = []
        for ledger in (entry for entry in ledgers if entry.label == recorded.label):
            found = joined.get(ledger.ledger, RecordedBuffer(ledger=ledger.ledger))
            stack = found.stack
            join = "address" if stack is not None else None
            if stack is None:
                stack = _by_stack(ledger, recording, index)
                join = "stack" if stack is not None else None
            step = _step_at(marks, ledger.created_ns)
            frames = recording.stacks[stack].frames if stack is not None else None
            site = _owner_of(sites, frames) if frames is not None else None
            buffers.append(ArrowBuffer(
                allocator=ledger.allocator, ledger=ledger.ledger, bytes=ledger.bytes, buffers=ledger.buffers,
                address=ledger.address, frames=ledger.frames, allocated_at=allocated_at(ledger.frames), step=step,
                step_kind=step_kinds.get(step) if step is not None else None,
                join=join,  # type: ignore[arg-type]
                call_site=stack_name(recording.stacks[stack]) if stack is not None else None,
                call_site_owner=site.owner if site is not None else None,
                chunk_bytes=found.chunk_bytes if join == "address" else None,
                native_step=found.step if join == "address" and found.step is not None and found.step >= 0 else None,
            ))
        result[recorded.label] = replace(sites, arrow_buffers=sorted(buffers, key=lambda b: (b.step or -1, b.ledger)))
    return result
