"""The goal of #12: at every snapshot of every bundled scenario, under each allocator and on JDK 17 and 25, the
ledger by address leaves |unexplained| <= max(2 % of the anonymous RSS growth, 1 MiB), and its owners add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import JDK17, JDK25, run_json
from workbench.scenario import bundled_scenarios

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
ALLOCATORS = ("jemalloc", "glibc", "tcmalloc", "mimalloc")
JDKS = {"17": JDK17, "25": JDK25}


@pytest.mark.parametrize("jdk", sorted(JDKS))
@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize("scenario", sorted(bundled_scenarios()))
def test_every_snapshot_is_explained_within_the_bound(tmp_path: Path, scenario: str, allocator: str,
                                                      jdk: str) -> None:
    home = JDKS[jdk]
    if not home.is_dir():
        pytest.skip(f"no JDK {jdk} installed")
    expect_exit = 1 if scenario == "intvector-leak" else 0
    report = run_json(tmp_path, scenario, "--allocator", allocator, "--java-home", str(home), "--hold", "0",
                      expect_exit=expect_exit)
    worst = 0
    for snapshot in report["snapshots"]:
        ledger = snapshot["reconciliation"]
        assert ledger["owners"] is not None, snapshot["label"]
        changes = [owner["delta_bytes"] for owner in ledger["owners"]]
        assert sum(changes) == snapshot["deltas"]["process.anon_rss_bytes"]  # every byte has one owner
        worst = max(worst, abs(ledger["unexplained_bytes"]))
        assert abs(ledger["unexplained_bytes"]) <= ledger["bound_bytes"], (snapshot["label"], ledger)
    print(f"{scenario} {allocator} JDK {jdk}: worst |unexplained| {worst:,} B")


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
