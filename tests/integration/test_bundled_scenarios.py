"""Every bundled scenario, run under its own expectations through the project's pytest plugin."""

from __future__ import annotations

import pytest

from tests.integration.conftest import BENCHMARK_ONLY
from workbench.pytest_plugin import RunScenario, assert_layer, measured
from workbench.scenario import bundled_scenarios

pytestmark = [pytest.mark.jvm, pytest.mark.slow]
MIB = 1024 * 1024


def test_every_bundled_scenario_has_a_test_here() -> None:
    tested = {"arrow-intvector", "intvector-grow", "intvector-leak", "intvector-churn-threads", "intvector-large",
              "direct-bytebuffer", "netty-vs-unsafe", "churn-arenas", "churn-grow-idle", "churn-netty",
              "intvector-open-vectors"}
    # The benchmark-only ones are checked by validation here (tests/unit) and run by their benchmark.
    assert set(bundled_scenarios()) == tested | set(BENCHMARK_ONLY)


def test_intvector_grow_doubles_by_set_safe(workbench_run: RunScenario) -> None:
    report = workbench_run("intvector-grow", hold="0")
    assert_layer(report, "arrow.allocated_bytes", at="allocated", eq=8192)
    assert_layer(report, "arrow.allocated_bytes", at="grown", eq="4MiB")
    # During the last doubling the 2 MiB buffer and the 4 MiB one are alive together.
    assert_layer(report, "arrow.peak_bytes", at="grown", eq="6MiB")
    assert report.checks.sum == 999_999_000_000 == report.checks.java_sum and report.checks.zero_copy
    assert all(e.ok for e in report.expectations)


def test_direct_bytebuffer_shows_in_nmt_and_rss_not_in_arrow(workbench_run: RunScenario) -> None:
    report = workbench_run("direct-bytebuffer", allocator="glibc")
    allocated = report.snapshot("allocated")
    assert allocated.arrow is None
    assert 256 * MIB <= allocated.deltas["nmt.categories.Other.committed_bytes"] < 260 * MIB
    assert allocated.deltas["process.anon_rss_bytes"] >= 250 * MIB
    assert report.snapshot("released").deltas["nmt.categories.Other.committed_bytes"] < 4 * MIB
    assert "-XX:MaxDirectMemorySize=512m" in report.jvm.options


def test_netty_vs_unsafe_in_one_jvm(workbench_run: RunScenario) -> None:
    report = workbench_run("netty-vs-unsafe", hold="0")
    assert measured(report, "arrow.allocated_bytes", at="netty") == 524288
    assert measured(report, "arrow.allocated_bytes", at="both") == 2 * 524288
    netty_growth = measured(report, "nmt.categories.Other.committed_bytes", at="netty", delta="baseline")
    unsafe_growth = measured(report, "nmt.categories.Other.committed_bytes", at="both", delta="netty")
    assert netty_growth >= 4 * MIB  # a whole pooled chunk
    assert 524288 <= unsafe_growth < 524288 + 64 * 1024  # exactly what Arrow accounts
    assert_layer(report, "nmt.categories.Other.committed_bytes", at="closed", delta="baseline", ge="4MiB")


def test_intvector_large_holds_gigabytes_under_its_limit(workbench_run: RunScenario) -> None:
    report = workbench_run("intvector-large")
    assert measured(report, "arrow.allocated_bytes", at="allocated") == 3 * 825_000_000
    assert measured(report, "process.anon_rss_bytes", at="filled", delta="baseline") >= 3 * 800_000_000
    assert measured(report, "arrow.allocated_bytes", at="closed") == 0
    assert measured(report, "process.anon_rss_bytes", at="closed", delta="baseline") < 256 * MIB


def test_intvector_leak_reports_its_buffer(workbench_run: RunScenario) -> None:
    report = workbench_run("intvector-leak", expect_exit=1)
    assert [(leak.allocator, leak.bytes) for leak in report.leaks] == [("root", 524288)]


def test_churn_scenario_under_glibc(workbench_run: RunScenario) -> None:
    report = workbench_run("intvector-churn-threads", allocator="glibc", hold="0")
    assert report.step_results[0]["allocations"] > 1000
    assert measured(report, "arrow.allocated_bytes", at="closed") == 0


def test_churn_arenas_makes_an_arena_per_thread_unless_arena_max_says_otherwise(workbench_run: RunScenario) -> None:
    """Under 16 churning threads glibc makes arenas up to 8 per core; with arena_max:2 malloc_info shows 2."""
    default = workbench_run("churn-arenas", hold="0")
    tuned = workbench_run("churn-arenas", allocator="glibc@arena_max:2", hold="0")
    assert default.snapshot("churned").allocator.raw["arenas"] > 2  # type: ignore[union-attr]
    assert tuned.snapshot("churned").allocator.raw["arenas"] == 2  # type: ignore[union-attr]
    assert tuned.allocator.spec == "glibc@arena_max:2"
    assert tuned.allocator.environment == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert [(s.key, s.asked, s.effective) for s in tuned.allocator.settings or []] == [("arena_max", "2", 2)]
    assert default.step_results[0]["allocations"] > 1000 and tuned.step_results[0]["allocations"] > 1000


def test_churn_grow_idle_returns_memory_while_idle_only_with_a_background_thread(
        workbench_run: RunScenario) -> None:
    """jemalloc purges dirty pages when it is called: idle for 12 s (past the 10 s decay) it keeps them, unless a
    background thread purges on time."""
    kept = workbench_run("churn-grow-idle")
    returned = workbench_run("churn-grow-idle", allocator="jemalloc@background_thread:true")
    kept_while_idle = measured(kept, "process.anon_rss_bytes", at="idle", delta="closed")
    returned_while_idle = measured(returned, "process.anon_rss_bytes", at="idle", delta="closed")
    # Without the thread some is purged all the same: the JVM's own threads call malloc while the program idles, and
    # jemalloc purges on such calls (measured once in a fresh clone's full run: -5,713,920 B); with it, at least
    # twice that much more.
    assert kept_while_idle > -8 * MIB, kept_while_idle
    assert returned_while_idle < -16 * MIB, returned_while_idle


def test_churn_netty_keeps_the_pooled_memory_after_close(workbench_run: RunScenario) -> None:
    report = workbench_run("churn-netty", hold="0")
    assert report.jvm.allocation_manager == "netty" and report.step_results[0]["allocations"] > 100
    assert measured(report, "arrow.allocated_bytes", at="idle") == 0
    # Netty's arenas keep their chunks: the process stays well above its baseline after everything is closed.
    assert measured(report, "process.anon_rss_bytes", at="idle", delta="baseline") >= 16 * MIB


def test_intvector_open_vectors_tells_open_buffers_from_closed_ones(workbench_run: RunScenario) -> None:
    report = workbench_run("intvector-open-vectors")  # profile: native, from the file
    churned = report.snapshot("churned").call_sites
    assert churned is not None and report.profile is not None
    # Arrow's buffers (a JIT compilation under allocateNew is the JVM's, not Arrow's).
    arrow = [s for s in churned.sites if s.owner in ("arrow-open", "pool-retained")]
    # The 20 open vectors: one stack, under the 20 allocate steps (2-21); the 180 closed ones (step 23) are gone.
    assert [(s.owner, s.bytes, s.count, s.steps, s.step_kind) for s in arrow] == \
        [("arrow-open", 83_886_080, 20, list(range(2, 22)), "allocate")]
    assert arrow[0].arrow_accounted_bytes == 83_886_080
    # Nothing Arrow allocated in step 23 is live (the worker's own Python objects go through malloc and may be
    # sampled in any step: those are the interpreter's, not the vectors').
    assert all(23 not in s.steps for s in churned.sites if any("org.apache.arrow" in f for f in s.frames))
    assert [leak.bytes for leak in report.profile.leaks] == [83_886_080]  # the allocator still holds them at the end
