"""Call sites classified on fabricated recordings: owners from frames and Arrow's accounting, deltas, leaks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.unit.reports import jemalloc_report
from workbench.probes.arrow import ArrowSnapshot
from workbench.probes.callsites import ProfileSection
from workbench.protocol.callsites import RecordedSite, RecordedSnapshot, RecordedStack, Recording, RecordingInfo
from workbench.report.callsites import classify
from workbench.report.callsites_diff import diff_call_sites
from workbench.report.model import Report, Snapshot, report_from_dict, report_to_json
from workbench.report.text import render_text

MIB = 1024 * 1024
ALLOCATE = ["workbench.jvm.VectorKernels.allocate", "org.apache.arrow.vector.BaseFixedWidthVector.allocateNew",
            "org.apache.arrow.memory.RootAllocator.buffer"]
UNSAFE_MALLOC = ["jdk.internal.misc.Unsafe.allocateMemory", "jdk.internal.misc.Unsafe.allocateMemory0",
                 "Unsafe_AllocateMemory0", "os::malloc"]
POOL = RecordedStack(
    frames=[*ALLOCATE, "org.apache.arrow.memory.netty.NettyAllocationManager.<init>",
            "io.netty.buffer.PoolArena.allocate", "io.netty.buffer.PoolArena$DirectArena.newChunk",
            "io.netty.buffer.PoolArena$DirectArena.allocateDirect", "java.nio.ByteBuffer.allocateDirect",
            "java.nio.DirectByteBuffer.<init>", *UNSAFE_MALLOC],
    kinds="J" * 11 + "NC", libraries=["libjvm.so"], java_frames=11)
DIRECT = RecordedStack(
    frames=[*ALLOCATE, "org.apache.arrow.memory.unsafe.UnsafeAllocationManager.<init>",
            "org.apache.arrow.memory.util.MemoryUtil.allocateMemory", *UNSAFE_MALLOC],
    kinds="J" * 7 + "NC", libraries=["libjvm.so"], java_frames=7)
COMPILER = RecordedStack(
    frames=["thread_native_entry", "CompileBroker::compiler_thread_loop", "C2Compiler::compile_method",
            "IndexSet::initialize", "Arena::grow", "os::malloc"],
    kinds="NCCCCC", libraries=["libjvm.so", "libc.so.6"])
# Arrow's code on the stack, but the malloc is a class being loaded: the JVM's, not a buffer.
CLASS_LOADING = RecordedStack(
    frames=["workbench.jvm.VectorKernels.rootAllocator", "org.apache.arrow.memory.BaseAllocator.<clinit>",
            "java.lang.ClassLoader.defineClass1", "ClassFileParser::parse_stream", "os::malloc"],
    kinds="JJJCC", libraries=["libjvm.so"], java_frames=3)
APP_UNSAFE = RecordedStack(
    frames=["Main.main", "Main.leak", *UNSAFE_MALLOC], kinds="JJJJNC", libraries=["libjvm.so"], java_frames=4)
STACKS = [POOL, DIRECT, COMPILER, CLASS_LOADING, APP_UNSAFE]


def _snapshot(label: str, arrow_bytes: int | None) -> Snapshot:
    arrow = ArrowSnapshot(allocated_bytes=arrow_bytes, peak_bytes=arrow_bytes, requested_bytes=0) \
        if arrow_bytes is not None else None
    return Snapshot(label=label, t_ms=0.0, cost_ms=0.0, arrow=arrow, nmt=None, allocator=None, process=None)


def _recording(*snapshots: tuple[str, list[RecordedSite]]) -> Recording:
    info = RecordingInfo(first_ns=0, last_ns=1, mallocs=1, frees=0, unmatched_frees=0, stacks=len(STACKS),
                         nmt_header_bytes=18, interval_bytes=0)
    return Recording(schema="workbench.native-callsites/1", recording=info, stacks=STACKS, snapshots=[
        RecordedSnapshot(label=label, t_ns=n, live_bytes=sum(s.bytes for s in sites),
                         live_count=sum(s.count for s in sites), sites=sites)
        for n, (label, sites) in enumerate(snapshots)])


def _site(stack: int, size: int, step: int = 2, count: int = 1) -> RecordedSite:
    return RecordedSite(stack=stack, bytes=size, count=count, steps={str(step): size})


def test_a_netty_chunk_is_pool_retained_once_arrow_accounts_none_of_it() -> None:
    recording = _recording(("baseline", [_site(2, 262144, step=-1)]),
                           ("allocated", [_site(0, 4 * MIB), _site(2, 262144, step=-1)]),
                           ("allocator-closed", [_site(0, 4 * MIB), _site(2, 262144, step=-1)]))
    snapshots = [_snapshot("baseline", 0), _snapshot("allocated", 524288), _snapshot("allocator-closed", 0)]
    sites, leaks = classify(recording, snapshots, {2: "allocate"}, arrow_leaked=False, collapsed={})
    allocated = sites["allocated"].sites[0]
    assert (allocated.owner, allocated.arrow_accounted_bytes, allocated.bytes) == ("pool-retained", 524288, 4 * MIB)
    assert allocated.delta_bytes == 4 * MIB and allocated.step == 2 and allocated.step_kind == "allocate"
    assert allocated.name == "PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew"
    closed = sites["allocator-closed"].sites[0]
    assert (closed.owner, closed.arrow_accounted_bytes, closed.delta_bytes) == ("pool-retained", 0, 0)
    assert sites["allocator-closed"].owners == {"pool-retained": 4 * MIB, "jvm": 262144}
    assert leaks == []  # the pool keeps it on purpose


def test_arrow_direct_buffers_are_open_while_accounted_and_gone_after_close() -> None:
    recording = _recording(("allocated", [_site(1, 524288)]), ("closed", []))
    sites, leaks = classify(recording, [_snapshot("allocated", 524288), _snapshot("closed", 0)], {2: "allocate"},
                            arrow_leaked=False, collapsed={})
    site = sites["allocated"].sites[0]
    assert (site.owner, site.bytes, site.arrow_accounted_bytes, site.detail) == \
        ("arrow-open", 524288, 524288, "UnsafeAllocationManager")
    assert site.name == "MemoryUtil.allocateMemory under BaseFixedWidthVector.allocateNew"
    assert sites["closed"].sites == [] and sites["closed"].live_bytes == 0
    freed = sites["closed"].growth[0]
    assert (freed.delta_bytes, freed.bytes, freed.owner) == (-524288, 0, "arrow-open")
    assert leaks == []


def test_open_arrow_buffers_of_a_leaking_allocator_are_leaks() -> None:
    recording = _recording(("end", [_site(0, 20 * 4 * MIB, count=20)]))
    sites, leaks = classify(recording, [_snapshot("end", 20 * 4 * MIB)], {2: "allocate"}, arrow_leaked=True,
                            collapsed={})
    assert sites["end"].sites[0].owner == "arrow-open"
    assert [(leak.bytes, leak.count, leak.leak) for leak in leaks] == [(83_886_080, 20, True)]


def test_the_jvm_owns_its_compiler_arenas_and_the_classes_arrow_loads() -> None:
    recording = _recording(("end", [_site(2, 1 * MIB, step=-1), _site(3, 65536, step=0)]))
    sites, leaks = classify(recording, [_snapshot("end", 0)], {}, arrow_leaked=False, collapsed={})
    by_frames = {tuple(s.frames): s for s in sites["end"].sites}
    compiler, loading = by_frames[tuple(COMPILER.frames)], by_frames[tuple(CLASS_LOADING.frames)]
    assert (compiler.owner, compiler.detail, compiler.name) == ("jvm", "compiler", "IndexSet::initialize (compiler)")
    assert (loading.owner, loading.detail, loading.arrow_accounted_bytes) == ("jvm", "class loading/zip", None)
    assert leaks == []


def test_the_applications_own_unsafe_malloc_left_at_the_end_is_a_leak_from_its_step() -> None:
    recording = _recording(("end", [RecordedSite(stack=4, bytes=1_234_567, count=1, steps={"5": 1_234_567})]))
    sites, leaks = classify(recording, [_snapshot("end", None)], {5: "churn"}, arrow_leaked=False, collapsed={})
    assert sites["end"].sites[0].owner == "other"
    assert [(leak.bytes, leak.step, leak.step_kind, leak.name) for leak in leaks] == \
        [(1_234_567, 5, "churn", "Main.leak under Main.main")]
    start_up = _recording(("end", [RecordedSite(stack=4, bytes=4096, count=1, steps={"-1": 4096})]))
    assert classify(start_up, [_snapshot("end", None)], {}, arrow_leaked=False, collapsed={})[1] == []


def _profiled(pool_bytes: int, arrow_bytes: int) -> Report:
    """jemalloc_report's first two snapshots, with a pool chunk's call site at `allocated`."""
    base = jemalloc_report()
    base = dataclasses.replace(base, snapshots=base.snapshots[:2])
    recording = _recording((base.snapshots[0].label, []), (base.snapshots[1].label, [_site(0, pool_bytes)]))
    snapshots = [dataclasses.replace(s, arrow=ArrowSnapshot(arrow_bytes, arrow_bytes, 0)) for s in base.snapshots]
    sites, leaks = classify(recording, snapshots, {2: "allocate"}, arrow_leaked=False, collapsed={})
    return dataclasses.replace(
        base, snapshots=[dataclasses.replace(s, call_sites=sites[s.label]) for s in snapshots],
        profile=ProfileSection(tool="async-profiler 4.2", interval_bytes=262144, recording="", callsites="",
                               leaks=leaks))


def test_diff_names_the_stack_whose_live_bytes_changed() -> None:
    a, b = _profiled(4 * MIB, 524288), _profiled(8 * MIB, 524288)
    [change] = diff_call_sites(a, b)
    assert (change.label, change.a_bytes, change.b_bytes, change.delta_bytes) == ("allocated", 4 * MIB, 8 * MIB, 4 * MIB)
    assert change.name == "PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew"
    assert diff_call_sites(a, a) == []


def test_text_report_prints_the_top_call_sites_and_the_pool_sentence() -> None:
    console = Console(width=200, record=True, color_system=None)
    render_text(_profiled(4 * MIB, 524288), console)
    text = console.export_text()
    assert "Native call sites at 'allocated': 4.0 MiB live in 1 stacks" in text
    assert "pool-retained   2 allocate   PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew" in text
    assert ("4,194,304 B were allocated by PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew in "
            "step 2 (allocate); Arrow accounts 524,288 B of them, the pool holds the rest.") in " ".join(text.split())
    # Round trip through report.json: the call sites are part of the contract.
    again = report_from_dict(json.loads(report_to_json(_profiled(4 * MIB, 524288))))
    assert again.snapshots[1].call_sites == _profiled(4 * MIB, 524288).snapshots[1].call_sites


def test_a_bad_profile_interval_is_one_line_naming_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_cli import assert_one_line_error, invoke

    # An empty cache: the option is refused before jemalloc is built (which would print its progress first).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    for command, after in ((["run", "arrow-intvector"], []), (["compare", "arrow-intvector", "-a", "glibc"], []),
                           (["exec"], ["--", "java", "-version"]), (["attach", "1"], [])):
        assert_one_line_error(invoke(*command, "--profile-interval", "often", *after), 2,
                              "--profile-interval: expected a size such as 4096 or 64MiB, got 'often'")
    for command in (["run", "arrow-intvector"], ["compare", "arrow-intvector", "-a", "jemalloc,glibc"]):
        assert_one_line_error(invoke(*command, "--profile-interval", "2GiB"), 2,
                              "--profile-interval: expected a size from 0 (every malloc) to 1GiB, got 2,147,483,648")
    assert not (tmp_path / "cache").exists()
