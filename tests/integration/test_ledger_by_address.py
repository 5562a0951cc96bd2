"""The goal of #12: at every snapshot of every bundled scenario, under each allocator and on JDK 17 and 25, the
ledger by address leaves |unexplained| <= max(2 % of the anonymous RSS growth, 1 MiB), and its owners add up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BENCHMARK_ONLY, JDK17, JDK25, run_json
from workbench.scenario import bundled_scenarios

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
ALLOCATORS = ("jemalloc", "glibc", "tcmalloc", "mimalloc")
JDKS = {"17": JDK17, "25": JDK25}


# The allocators the workbench builds record the ranges they map: their resident pages are the kernel's, found by
# address, and with PYTHONMALLOC=malloc Python's memory is among them. Measured in full runs here (2026-12-01, JDK 17
# and Temurin 25, every bundled scenario): the worst |unexplained| was +143,360 B (intvector-churn-threads, jemalloc,
# JDK 17, 'closed'), against the 1 MiB bound; so these are gates, not marks. tcmalloc is built here since 2026-12-02
# (gperftools' tcmalloc_minimal, recording what TCMalloc_SystemAlloc obtains): its 22 combinations in two runs, JDK 17
# and 25: the worst |unexplained| on the seven older scenarios +118,784 B (netty-vs-unsafe, JDK 17, 'both'), where
# Debian's build (system:tcmalloc), its resident claimed by figure, left -1.5 to -6.6 MB on four of them.
BY_RECORDED_RANGES = ("jemalloc", "tcmalloc", "mimalloc")
# glibc: its heaps by their shape, its mmapped chunks by their headers (exactly hblks/hblkhd at every snapshot,
# asserted), nothing claimed by figure. One run of every glibc combination here (2026-12-02, `-k glibc`): all within
# the bound but intvector-open-vectors on JDK 17 (G1's mark bitmaps, found since: below); the worst of the others +446,464 B
# of a 1,100,103 B bound (churn-netty, JDK 25, 'churned'), then +393,216 B of 1,048,576 B (churn-arenas, JDK 17); so
# these are gates (the churn scenarios too, below). Before (hblkhd claimed whole, 2026-12-01): arrow-intvector and
# netty-vs-unsafe on JDK 25 -3.66 MB
# (Netty's 4 MiB chunk, +532,480 B of it resident), the churn scenarios +3.0..+9.9 MB (arena heaps not matched by
# their shape: one whose inaccessible rest the kernel had merged with a guard page after it, one whose read-write part
# it had merged with the mapping before it). What stays under churn-arenas (+393,216 B, both JDKs) is 16 mappings of
# 1,032,192 B with 24,576 B each: the ended churn threads' stacks glibc keeps for reuse (owner cached-stacks since).
BY_HEADERS = ("glibc",)
# Combinations over the bound, with what was measured (none now: every allocator's memory is found by address).
MEASURED_OVER: dict[tuple[str, str, str], str] = {
}
# intvector-open-vectors was +2.6 to +4.5 MB at 'after-gc' on JDK 17 under every allocator, with or without
# async-profiler: G1's full GC touches its mark bitmaps (1/64 of the committed heap: a new 3,407,872-byte mapping for
# a 218,103,808-byte heap), reserved outside the heap. Found by address from -Xlog:pagesize (probes/regions.py), the
# 'gc' owner has +4,517,888 B there; in the runs of 2026-12-02 (both JDKs, every allocator) the scenario's worst
# |unexplained| but tcmalloc's was +249,856 B (mimalloc, JDK 25, two runs): a gate for the allocators found by address.
# The churn scenarios (churn-arenas, churn-grow-idle, churn-netty) are gates too since 2026-12-02: three runs of their
# 24 combinations (`-k "churn-arenas or churn-grow-idle or churn-netty"`), all within the bound in each. Before the
# ended threads' stacks had an owner (cached-stacks), the worst was +634,880 B of 1,707,048 B (churn-netty, jemalloc,
# JDK 25, 'idle') and churn-arenas +393,216..+544,768 B under every allocator but mimalloc on JDK 25 (+81,920 B)
# (its 16 ended threads' stacks, 24,576 B each); after, the worst -270,336 B of 1,048,576 B (churn-arenas, mimalloc, JDK 17, 'churned': mimalloc's churn
# scenarios were -217,088..-270,336 B, the reader's own pages counted twice, subtracted as the workbench's buffers;
# fixed in snapshot.c), the others at most +217,088 B. A third run with that fix: all within, mimalloc at most
# +36,864 B, the worst +221,184 B of 1,322,106 B (churn-grow-idle, jemalloc, JDK 25, 'idle').
# Within the bound in the one full run made here, but by a thin margin (over half the bound): not yet a gate.
THIN_MARGIN: dict[tuple[str, str, str], str] = {
}


def _combinations() -> list[object]:
    params: list[object] = []
    for scenario in sorted(set(bundled_scenarios()) - set(BENCHMARK_ONLY)):
        for allocator in ALLOCATORS:
            for jdk in sorted(JDKS):
                combination = (scenario, allocator, jdk)
                marks = []
                if combination in MEASURED_OVER:
                    marks = [pytest.mark.xfail(strict=False, reason=MEASURED_OVER[combination])]
                elif combination in THIN_MARGIN:
                    marks = [pytest.mark.xfail(strict=False, reason=f"within in one run, thin margin: "
                                                                    f"{THIN_MARGIN[combination]}")]
                params.append(pytest.param(*combination, marks=marks, id=f"{scenario}-{allocator}-{jdk}"))
    return params


def _over_the_bound(report: dict[str, Any], scenario: str, allocator: str, jdk: str) -> list[tuple[object, ...]]:
    """The snapshots whose unexplained bytes are over the bound (or, under glibc, whose mmapped chunks the search did
    not find exactly), after asserting what holds exactly at every one."""
    over: list[tuple[object, ...]] = []
    for snapshot in report["snapshots"]:
        ledger = snapshot["reconciliation"]
        assert ledger["owners"] is not None, snapshot["label"]
        if allocator in BY_RECORDED_RANGES:  # its mappings by the ranges it recorded, nothing claimed by figure
            assert snapshot["attribution"]["allocator_mappings"] == "recorded" and ledger["malloc"] is None
        if allocator in BY_HEADERS:  # its heaps by their shape, its mmapped chunks by their headers: nothing claimed
            chunks = snapshot["attribution"]["glibc_chunks"]
            assert snapshot["attribution"]["allocator_mappings"] == "glibc-heaps"
            if chunks["how"] != "found":  # the search said it could not find them exactly: retried as over the bound
                over.append((snapshot["label"], chunks["how"], chunks["found_chunks"], chunks["hblks"]))
                continue
            assert chunks["found_bytes"] == chunks["hblkhd"] and ledger["malloc"] is None, chunks
        changes = [owner["delta_bytes"] for owner in ledger["owners"]]
        assert sum(changes) == snapshot["deltas"]["process.anon_rss_bytes"]  # every byte has one owner
        walked = f", System.map's mappings walked {chunks['named_mappings']}" if allocator in BY_HEADERS else ""
        print(f"{scenario} {allocator} JDK {jdk} '{snapshot['label']}': unexplained {ledger['unexplained_bytes']:+,} B,"
              f" bound {ledger['bound_bytes']:,} B{walked}")
        if abs(ledger["unexplained_bytes"]) > ledger["bound_bytes"]:
            over.append((snapshot["label"], ledger["unexplained_bytes"], ledger["bound_bytes"]))
    return over


@pytest.mark.parametrize(("scenario", "allocator", "jdk"), _combinations())
def test_every_snapshot_is_explained_within_the_bound(tmp_path: Path, scenario: str, allocator: str,
                                                      jdk: str) -> None:
    home = JDKS[jdk]
    if not home.is_dir():
        pytest.skip(f"no JDK {jdk} installed")
    expect_exit = 1 if scenario == "intvector-leak" else 0
    args = (scenario, "--allocator", allocator, "--java-home", str(home), "--hold", "0")
    over = _over_the_bound(run_json(tmp_path, *args, expect_exit=expect_exit), scenario, allocator, jdk)
    if over:
        # Something outside the program lands in a snapshot now and then on a loaded machine (a JIT compile's
        # arenas, a short-lived mapping: measured once in six runs, a 1,888,256-byte mapping below libarrow.so at
        # 'filled' under glibc, gone at the next snapshot; in a full CI run, intvector-open-vectors under glibc on
        # JDK 25, 9 chunks found by their headers where glibc counted 8: a look-alike, so the search said "claimed"):
        # one run over the bound is run again, and a combination fails when the second run is over too; both runs'
        # figures are in the output.
        print(f"over the bound in the first run: {over}; running it again")
        again = tmp_path / "again"
        again.mkdir()
        over_again = _over_the_bound(run_json(again, *args, expect_exit=expect_exit), scenario, allocator, jdk)
        assert not over_again, (over, over_again)


@pytest.mark.skipif(not JDK17.is_dir(), reason="no JDK 17")
def test_jdk17_java_heap_pages_touched_are_found_from_the_start_up_log(tmp_path: Path) -> None:
    report = run_json(tmp_path, "arrow-intvector", "--allocator", "jemalloc", "--java-home", str(JDK17),
                      "--hold", "0")
    baseline = report["snapshots"][0]["attribution"]
    assert baseline["sources"][:3] == ["start-up-log", "codecache", "metaspace"]
    owners = baseline["owners"]
    # The heap is committed from the start (388 MiB) and only partly touched; the JVM's threads' stacks are found.
    assert 0 < owners["java-heap"]["resident_bytes"] < owners["java-heap"]["size_bytes"]
    assert owners["java-heap"]["size_bytes"] >= 388 * 1024 * 1024
    assert baseline["stacks_found"] >= 10 and owners["code"]["resident_bytes"] > 0


@pytest.mark.parametrize("jdk", sorted(JDKS))
def test_churn_arenas_ended_threads_stacks_are_found_in_glibc_s_stack_cache(tmp_path: Path, jdk: str) -> None:
    home = JDKS[jdk]
    if not home.is_dir():
        pytest.skip(f"no JDK {jdk} installed")
    report = run_json(tmp_path, "churn-arenas", "--allocator", "glibc", "--java-home", str(home), "--hold", "0")
    snapshots = {s["label"]: s for s in report["snapshots"]}
    assert snapshots["baseline"]["attribution"]["cached_stacks"]["mappings"] == 0
    for label in ("churned", "idle"):
        attribution = snapshots[label]["attribution"]
        found, owner = attribution["cached_stacks"], attribution["owners"]["cached-stacks"]
        # The 16 churn threads have ended: their stacks (-Xss1m, above HotSpot's 16 KiB of guard zones) stay mapped,
        # each with the pages above where its stack pointer ended (measured: 24,576 B each, both JDKs).
        assert found["how"] == "descriptor" and found["mappings"] >= 16 and found["candidates"] >= found["mappings"]
        assert owner["mappings"] == found["mappings"] and owner["resident_bytes"] == found["resident_bytes"]
        assert owner["size_bytes"] >= 16 * 1_032_192 and owner["resident_bytes"] >= 16 * 8192
        line = next(o for o in snapshots[label]["reconciliation"]["owners"] if o["owner"] == "cached-stacks")
        assert line["delta_bytes"] == owner["resident_bytes"]
        # every thread waiting in a system call has its stack found by its pointer: none of them is taken
        assert attribution["owners"]["thread-stacks"]["mappings"] >= attribution["stacks_found"] > 0
