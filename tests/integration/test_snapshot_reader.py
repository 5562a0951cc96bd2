"""The snapshot reader of libworkbench-probe.so (native/probe/snapshot.c): the figures smaps has, in either preload
order nothing allocated through the measured allocator, and 30 snapshots in a row that leave no trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_json
from workbench.probes.native_probe import SnapshotLibrary
from workbench.probes.process import parse_smaps
from workbench.toolchain.allocators import resolve_allocator
from workbench.toolchain.probe import ensure_probe

KIB = 1024


@pytest.fixture(scope="module")
def library() -> SnapshotLibrary:
    return SnapshotLibrary(ensure_probe(quiet=True))


def test_each_mapping_has_the_rss_and_anonymous_smaps_prints(library: SnapshotLibrary, tmp_path: Path) -> None:
    raw = tmp_path / "smaps.txt"
    scanned = library.read_process()
    with raw.open("wb") as out:
        from_smaps = library.read_process(raw_fd=out.fileno(), mode="smaps")
    again = library.read_process()
    assert from_smaps.source == "smaps"
    # The mappings that did not move between the two scans (this process allocates while it reads) are exact.
    steady = {(m.start, m.end): m for m in scanned.mappings} .items() & {(m.start, m.end): m for m in again.mappings}.items()
    smaps = {(m.start, m.end): m for m in from_smaps.mappings}
    compared = [m for key, m in steady if key in smaps]
    assert len(compared) > len(scanned.mappings) * 0.9
    assert [(m.start, m.rss_bytes, m.anon_bytes, m.name, m.perms) for m in sorted(compared, key=lambda m: m.start)] \
        == [(smaps[(m.start, m.end)].start, smaps[(m.start, m.end)].rss_bytes, smaps[(m.start, m.end)].anon_bytes,
             smaps[(m.start, m.end)].name, smaps[(m.start, m.end)].perms) for m in sorted(compared, key=lambda m: m.start)]
    # The raw text is /proc/self/smaps itself, and parses to the same mappings.
    assert [(m.start, m.rss_bytes, m.anon_bytes) for m in parse_smaps(raw.read_text())] == \
        [(m.start, m.rss_bytes, m.anon_bytes) for m in from_smaps.mappings]
    assert sum(m.anon_bytes for m in from_smaps.mappings) == from_smaps.anon_rss_bytes


def test_the_scanned_raw_text_parses_to_the_figures_read(library: SnapshotLibrary, tmp_path: Path) -> None:
    raw = tmp_path / "scanned.txt"
    with raw.open("wb") as out:
        read = library.read_process(raw_fd=out.fileno())
    if read.source != "pagemap-scan":
        pytest.skip(f"this kernel ({os.uname().release}) has no PAGEMAP_SCAN: smaps is read instead")
    assert [(m.start, m.end, m.rss_bytes, m.anon_bytes, m.name) for m in parse_smaps(raw.read_text())] == \
        [(m.start, m.end, m.rss_bytes, m.anon_bytes, m.name) for m in read.mappings]
    start, end = read.buffers
    assert start < end and read.buffers_anon_bytes > 0  # its own region, by address, from the same scan
    assert any(m.start <= start and end <= m.end for m in read.mappings)


def test_an_unchanged_mapping_is_the_same_object_at_the_next_read(library: SnapshotLibrary) -> None:
    first = library.read_process()
    second = library.read_process()
    kept = sum(a is b for a, b in zip(first.mappings, second.mappings))
    assert kept > len(first.mappings) * 0.9


_SUBJECT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from workbench.probes.native_probe import SnapshotLibrary
    library = SnapshotLibrary(Path(sys.argv[1]))
    def one_round():
        for mode in ("pagemap-scan", "smaps"):
            library._library.workbench_read_process(0, -1, {"pagemap-scan": 1, "smaps": 2}[mode], library._process)
        library.stack_pointers()
        library.pymalloc_pools_bytes()
        library.size_classes()
    for _ in range(3):
        one_round()
    library.flush_thread_cache()
    before = library.allocated_bytes()
    for _ in range(50):
        one_round()
    library.flush_thread_cache()
    after = library.allocated_bytes()
    print(json.dumps({"backend": library.backend, "allocated_delta": after - before if before is not None else None,
                      "mappings": library.read_process().mappings.__len__()}))
""")


@pytest.mark.parametrize("order", ["probe_first", "allocator_first", "glibc"])
def test_reading_allocates_nothing_through_the_measured_allocator(order: str, tmp_path: Path) -> None:
    probe = ensure_probe(quiet=True)
    jemalloc = resolve_allocator("system:jemalloc").library
    preload = {"probe_first": [probe, jemalloc], "allocator_first": [jemalloc, probe], "glibc": [probe]}[order]
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(LD_PRELOAD=":".join(map(str, preload)), WORKBENCH_PROBE_DIR=str(tmp_path))
    os.chmod(tmp_path, 0o700)
    result = subprocess.run([sys.executable, "-c", _SUBJECT, str(probe)], env=env, capture_output=True, text=True,
                            timeout=120)
    print(result.stdout, result.stderr)
    assert result.returncode == 0
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert answer["backend"] == ("glibc" if order == "glibc" else "jemalloc")
    # 50 rounds of every read: not one byte more allocated (the allocator's own figure, this thread's cache flushed).
    assert answer["allocated_delta"] == 0
    assert answer["mappings"] > 10


def _steps(report: dict[str, Any]) -> list[tuple[str, int, int, dict[str, int]]]:
    """(label, anonymous RSS change, allocated change, what moved meanwhile) from each snapshot to the next: NMT
    categories (committed, and malloc where only that moved), the owners of the anonymous pages (resident, by
    address), jemalloc's dirty pages and resident, and the allocations the snapshot itself saw (own)."""
    steps = []
    for before, after in zip(report["snapshots"], report["snapshots"][1:]):
        moved: dict[str, int] = {}
        for name, category in after["nmt"]["categories"].items():
            earlier = before["nmt"]["categories"].get(name)
            if earlier is None or name == "Native Memory Tracking":
                continue
            committed = category["committed_bytes"] - earlier["committed_bytes"]
            malloc = (category["malloc_bytes"] or 0) - (earlier["malloc_bytes"] or 0)
            if committed:
                moved[f"nmt {name}"] = committed
            elif malloc:
                moved[f"nmt {name} malloc"] = malloc
        for owner, share in after["attribution"]["owners"].items():
            change = share["resident_bytes"] - before["attribution"]["owners"][owner]["resident_bytes"]
            if change:
                moved[f"owner {owner}"] = change
        raw_after, raw_before = after["allocator"].get("raw") or {}, before["allocator"].get("raw") or {}
        if "dirty_bytes" in raw_after and "dirty_bytes" in raw_before:
            moved["jemalloc dirty"] = raw_after["dirty_bytes"] - raw_before["dirty_bytes"]
        if after["allocator"]["resident_bytes"] is not None:
            moved["allocator resident"] = after["allocator"]["resident_bytes"] - before["allocator"]["resident_bytes"]
        moved["own (during the snapshot)"] = after["own_allocated_bytes"]
        steps.append((after["label"], after["process"]["anon_rss_bytes"] - before["process"]["anon_rss_bytes"],
                      after["allocator"]["allocated_bytes"] - before["allocator"]["allocated_bytes"],
                      {k: v for k, v in moved.items() if v}))
    return steps


@pytest.mark.jvm
@pytest.mark.slow
@pytest.mark.parametrize("allocator", ["jemalloc", "glibc"])
def test_thirty_snapshots_in_a_row_leave_no_trace(allocator: str, tmp_path: Path) -> None:
    # The JVM settles first (start-up's JIT compiles, the chunk pool's 5 s cleaner), then only snapshots.
    steps = ["  - root_allocator: {name: root}", "  - sleep: 6s", "  - snapshot: baseline"]
    steps += [f"  - snapshot: s{n}" for n in range(1, 31)]
    scenario = tmp_path / "thirty-snapshots.yaml"
    scenario.write_text("name: thirty-snapshots\ndescription: 30 snapshots in a row, nothing in between\n"
                        "steps:\n" + "\n".join(steps) + "\n")
    # The goal holds at every step of a run in most runs; in the rest one step of thirty is over it by what the
    # program's allocator did between two snapshots on its own. Measured with the final code in 16 runs under pytest
    # (8 of each allocator) and 12 more under glibc: jemalloc's 10 s decay purging dirty pages (anonymous RSS
    # -94,208 B, jemalloc's dirty -98,304 B) or pages of its own mappings faulted in again (+73,728 B, allocated +96
    # B), and once under glibc +2,756,608 B in its arenas with allocated +37,440 B (freed memory glibc kept; whose,
    # not located). So a run over the goal is made again, twice at most, and the test fails when all three are over:
    # a trace the workbench leaves is in every run.
    attempts: list[list[tuple[str, int, int, dict[str, int]]]] = []
    for attempt in range(3):
        out = tmp_path / f"run-{attempt}"
        out.mkdir()
        report = run_json(out, str(scenario), "--allocator", allocator, "--no-html")
        snapshots = report["snapshots"]
        assert len(snapshots) == 31
        # The reader's own buffers are resident from the baseline on and do not grow per snapshot: a page or a few
        # more only when the process gains mappings meanwhile (measured once in a full CI run: 225,280 -> 237,568 B).
        own = [s["attribution"]["workbench_buffers_bytes"] for s in snapshots]
        assert own[0] > 0 and own == sorted(own), own
        assert own[-1] - own[0] <= 64 * KIB and len(set(own)) <= 3, own
        steps = _steps(report)
        # Every step, with which layer moved: the test's output is the measurement (pytest -s, or on failure).
        for label, anon, allocated, moved in steps:
            flag = "over" if abs(anon) >= 64 * KIB or abs(allocated) >= 16 * KIB else "    "
            print(f"{flag} {label:>4} anon {anon:+9,} B  allocated {allocated:+9,} B  {moved}")
        over = [step for step in steps if abs(step[1]) >= 64 * KIB or abs(step[2]) >= 16 * KIB]
        # The snapshot's own allocations, measured by the snapshot itself: the same small amount every time (34-73 KB
        # measured); one outside that counts as a step over the goal.
        over += [(s["label"], 0, 0, {"own (during the snapshot)": s["own_allocated_bytes"]}) for s in snapshots
                 if not 0 <= s["own_allocated_bytes"] < 128 * KIB]
        if not over:
            return
        print(f"run {attempt + 1}: {len(over)} of 30 steps over the goal (64 KiB anonymous RSS, 16 KiB allocated, "
              f"the snapshot's own allocations within 0..128 KiB): {over}")
        attempts.append(over)
    pytest.fail(f"every run had a step over the goal (64 KiB anonymous RSS, 16 KiB allocated, the snapshot's own "
                f"allocations within 0..128 KiB): {attempts}")
