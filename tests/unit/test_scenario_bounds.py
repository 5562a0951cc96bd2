"""A scenario cannot multiply work past a bound: steps written, snapshots, threads at once, steps run; each is one
line naming the step, and a scenario at the bound is accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench._errors import BadInput
from workbench.scenario import load_scenario
from workbench.scenario.model import Scenario

HEADER = "name: t\ndescription: d\nsteps:\n"


def load(tmp_path: Path, body: str) -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(HEADER + body)
    return load_scenario(path)


def error_of(tmp_path: Path, body: str) -> str:
    with pytest.raises(BadInput) as info:
        load(tmp_path, body)
    return info.value.message.replace(str(tmp_path / "s.yaml"), "FILE")


def nested(kind: str, field: str, counts: list[int], inner: str = "[gc]") -> str:
    """`kind` steps nested one in another with these counts, the innermost running `inner`."""
    text = inner
    for count in reversed(counts):
        text = f"[{{{kind}: {{{field}: {count}, steps: {text}}}}}]"
    return f"  - {text[1:-1]}\n"


def test_ten_thousand_steps_are_accepted_and_one_more_is_refused(tmp_path: Path) -> None:
    assert len(load(tmp_path, "  - gc\n" * 10_000).steps) == 10_000
    assert error_of(tmp_path, "  - gc\n" * 10_001) == (
        "FILE:10004: steps[10000].gc: more than 10,000 steps, counting those inside repeat and threads "
        "(expected at most 10,000 steps in a scenario)")


def test_steps_inside_repeat_count_towards_the_bound(tmp_path: Path) -> None:
    inner = "[" + ", ".join(["gc"] * 10_000) + "]"
    assert error_of(tmp_path, nested("repeat", "times", [2], inner)) == (
        "FILE:4: steps[0].repeat.steps[9999].gc: more than 10,000 steps, counting those inside repeat and threads "
        "(expected at most 10,000 steps in a scenario)")


def test_a_thousand_snapshots_are_accepted_and_one_more_is_refused(tmp_path: Path) -> None:
    body = "".join(f"  - snapshot: s{n}\n" for n in range(1_000))
    assert len(load(tmp_path, body).steps) == 1_000
    assert error_of(tmp_path, body + "  - snapshot: one-more\n") == (
        "FILE:1004: steps[1000].snapshot: more than 1,000 snapshots (expected at most 1,000 in a scenario)")


def test_nested_threads_multiply_up_to_256_threads_at_once(tmp_path: Path) -> None:
    assert load(tmp_path, nested("threads", "count", [16, 16])).steps
    assert error_of(tmp_path, nested("threads", "count", [16, 17])) == (
        "FILE:4: steps[0].threads: expected at most 256 threads at once, got 272 (16 threads, each running steps "
        "that start 17)")


def test_a_churn_inside_threads_counts_its_threads(tmp_path: Path) -> None:
    churn = "[{root_allocator: {}}, {churn: {threads: 256, duration: 1s}}, {close: root}]"
    assert error_of(tmp_path, nested("threads", "count", [8], churn)) == (
        "FILE:4: steps[0].threads: expected at most 256 threads at once, got 2048 (8 threads, each running steps "
        "that start 256)")


def test_nested_repeats_multiply_up_to_a_billion_steps_run(tmp_path: Path) -> None:
    # 1 + 1,000 + 1,000,000 + 998,000,000 steps run (the repeats are steps too).
    assert load(tmp_path, nested("repeat", "times", [1000, 1000, 998])).steps
    assert error_of(tmp_path, nested("repeat", "times", [1000, 1000, 1000])) == (
        "FILE:4: steps[0].repeat.steps[0].repeat.steps[0].repeat.steps[0].gc: "
        "the scenario would run more than 1,000,000,000 steps (repeat.times and threads.count multiply the steps "
        "inside them; expected at most 1,000,000,000)")


def test_validate_prints_the_bound_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEADER + nested("threads", "count", [256, 256]))
    result = subprocess.run([sys.executable, "-m", "workbench", "validate", str(path)], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr == (f"{path}:4: steps[0].threads: expected at most 256 threads at once, got 65536 (256 "
                             "threads, each running steps that start 256)\n")
