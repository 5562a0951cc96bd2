"""The step language, really run: allocators and children with limits, vector types, transfer, slice, repeat,
threads; Java failures end the run with the exception's class and message (exit 3)."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.pytest_plugin import RunScenario, measured

pytestmark = [pytest.mark.jvm, pytest.mark.slow]


def scenario(*steps: Any, **top: Any) -> dict[str, Any]:
    return {"name": "steps", "description": "step language test", "allocation_manager": "unsafe", **top,
            "steps": list(steps)}


def test_child_allocator_transfer_slice_and_vector_types(workbench_run: RunScenario) -> None:
    report = workbench_run(scenario(
        {"root_allocator": {"name": "root"}},
        {"child_allocator": {"name": "child", "parent": "root", "limit": "16MiB"}},
        {"snapshot": "baseline"},
        {"allocate": {"vector": "ints", "count": 100000, "allocator": "child"}},
        {"allocate": {"vector": "longs", "type": "BigIntVector", "count": 100000}},
        {"allocate": {"vector": "doubles", "type": "Float8Vector", "count": 100000}},
        {"allocate": {"vector": "text", "type": "VarCharVector", "count": 1000, "bytes_per_value": 16}},
        {"fill": {"vector": "ints", "pattern": "constant", "k": 7}},
        {"fill": {"vector": "longs", "pattern": "random", "k": 1000, "seed": 1}},
        {"fill": {"vector": "doubles", "k": 3}},
        {"fill": {"vector": "text", "k": 1}},
        {"snapshot": "allocated"},
        {"transfer": {"vector": "ints", "to": "root", "as": "moved"}},
        {"slice": {"vector": "moved", "start": 0, "length": 50000, "as": "half"}},
        {"verify": "half"},
        {"snapshot": "moved"},
        {"close": "half"}, {"close": "moved"}, {"close": "longs"}, {"close": "doubles"}, {"close": "text"},
        {"close": "child"}, {"close": "root"},
        {"snapshot": "closed"},
    ), allocator="glibc")
    # IntVector 512 KiB + BigInt and Float8 (800,000 + 12,500 -> 1 MiB each) + VarChar (offsets, validity, data).
    allocated = measured(report, "arrow.allocated_bytes", at="allocated")
    assert 524288 + 2 * 1048576 < allocated < 524288 + 2 * 1048576 + 64 * 1024
    # A constant 7 in the first 50,000 values of the slice.
    assert report.checks.sum == 350000 == report.checks.java_sum and report.checks.zero_copy
    assert measured(report, "arrow.allocated_bytes", at="closed") == 0
    assert report.leaks == [] and report.status == "ok"


def test_repeat_and_threads_leave_nothing_allocated(workbench_run: RunScenario) -> None:
    report = workbench_run(scenario(
        {"root_allocator": {}},
        {"snapshot": "baseline"},
        {"repeat": {"times": 20, "steps": [
            {"allocate": {"vector": "v", "count": 200000}}, {"fill": {"vector": "v", "k": 2}}, {"close": "v"}]}},
        {"threads": {"count": 4, "steps": [
            {"allocate": {"vector": "v", "count": 300000}}, {"set_safe": {"vector": "v", "count": 600000}},
            {"close": "v"}]}},
        {"snapshot": "after"},
        {"close": "root"},
    ), allocator="glibc")
    after = report.snapshot("after")
    assert after.arrow is not None and after.arrow.allocated_bytes == 0
    # Four threads each held a grown 4 MiB buffer (and briefly its 2 MiB predecessor) at once at some point.
    assert 4 * 2 * 1024 * 1024 <= after.arrow.peak_bytes <= 4 * 6 * 1024 * 1024


def test_a_limit_fails_the_run_with_arrows_exception_and_keeps_the_snapshots(workbench_run: RunScenario) -> None:
    report = workbench_run(scenario(
        {"root_allocator": {}},
        {"child_allocator": {"name": "small", "limit": "1MiB"}},
        {"snapshot": "baseline"},
        {"allocate": {"vector": "fits", "count": 100000, "allocator": "small"}},
        {"snapshot": "one"},
        {"allocate": {"vector": "too-many", "count": 200000, "allocator": "small"}},
        {"snapshot": "never"},
    ), allocator="glibc", expect_exit=3)
    assert report.status == "failed" and report.error is not None
    assert report.error.type == "org.apache.arrow.memory.OutOfMemoryException"
    assert report.error.step == 5 and report.error.kind == "allocate"
    assert [s.label for s in report.snapshots] == ["baseline", "one"]


def test_growing_past_a_childs_limit_fails_inside_set_safe(workbench_run: RunScenario) -> None:
    report = workbench_run(scenario(
        {"root_allocator": {}}, {"child_allocator": {"name": "child", "limit": "1MiB"}}, {"snapshot": "baseline"},
        {"allocate": {"vector": "v", "count": 1000, "allocator": "child"}},
        {"set_safe": {"vector": "v", "count": 1000000}},
    ), allocator="glibc", expect_exit=3)
    assert report.error is not None and report.error.type == "org.apache.arrow.memory.OutOfMemoryException"
    assert report.error.kind == "set_safe" and report.error.step == 4


def test_every_write_path_of_fill_leaves_the_same_values_and_reports_its_throughput(
        workbench_run: RunScenario) -> None:
    count = 100_003  # not a multiple of 8: the last validity byte is set bit by bit
    for write in ("unchecked", "set", "set_safe"):
        report = workbench_run(scenario(
            {"root_allocator": {}},
            {"allocate": {"vector": "v", "count": count}},
            {"fill": {"vector": "v", "k": 2, "count": count, "write": write}},
            {"allocate": {"vector": "text", "type": "VarCharVector", "count": 1000}},
            {"repeat": {"times": 3, "steps": [{"fill": {"vector": "text", "k": 1, "count": 1000, "write": write}}]}},
            {"verify": "v"},
            {"snapshot": "filled"},
            {"close": "v"}, {"close": "text"}, {"close": "root"},
        ), allocator="glibc")
        # pyarrow sums what Java wrote, validity bits included: sum of 2i for i < 100,003.
        assert report.checks.sum == 10_000_500_006 == report.checks.java_sum, write
        ints, text = report.step_results
        assert (ints["event"], ints["vector"], ints["write"], ints["times"], ints["count"], ints["bytes"]) == \
            ("fill", "v", write, 1, count, 4 * count)
        assert ints["gb_per_s"] == pytest.approx(ints["bytes"] / ints["seconds"] / 1e9, rel=1e-3)
        # A VarCharVector is always written with setSafe; the repeat's three runs are one result. Each run writes
        # 1,000 offsets and the digits of 0..999 (10 x 1 + 90 x 2 + 900 x 3 = 2,890 bytes).
        assert (text["vector"], text["write"], text["times"], text["count"], text["bytes"]) == \
            ("text", "set_safe", 3, 3000, 3 * (4 * 1000 + 2890))


def test_a_fill_with_set_safe_grows_the_vector_past_what_was_allocated(workbench_run: RunScenario) -> None:
    report = workbench_run(scenario(
        {"root_allocator": {}}, {"allocate": {"vector": "v", "count": 1000}},
        {"fill": {"vector": "v", "count": 1_000_000, "k": 2, "write": "set_safe"}},
        {"snapshot": "grown"}, {"close": "v"}, {"close": "root"},
    ), allocator="glibc")
    # As the set_safe step does (intvector-grow): the vector doubles until 1,000,000 ints fit, 4 MiB in all.
    assert measured(report, "arrow.allocated_bytes", at="grown") == 4 * 1024 * 1024
    assert report.step_results[0]["count"] == 1_000_000
