"""The call-site tables beyond the terminal report: Markdown (the last snapshot's top sites, owners, open Arrow
buffers) and ``compare --profile`` (each owner's bytes per allocator side by side), on fabricated reports."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from tests.unit.test_callsites import MIB, _profiled
from workbench.probes.callsites import ArrowBuffer
from workbench.report.callsites_text import render_compare_call_sites
from workbench.report.markdown import render_markdown

CHUNK = "PoolArena$DirectArena.newChunk under BaseFixedWidthVector.allocateNew"


def test_markdown_has_the_top_call_sites_and_owners_as_tables() -> None:
    text = render_markdown(_profiled(4 * MIB, 524288))
    section = text.split("## Native call sites", 1)[1].split("## Reconciliation", 1)[0]
    assert "| live | count | since previous | owner | step | allocated by |" in section
    assert f"| 4.0 MiB | 1 | +4.0 MiB | pool-retained | 2 allocate | {CHUNK} |" in section
    assert "| pool-retained | 4,194,304 B |" in section
    assert "Open Arrow buffers" not in section  # Arrow's debug allocator was off


def test_markdown_lists_the_open_buffers_when_the_debug_allocator_was_on() -> None:
    report = _profiled(4 * MIB, 4 * MIB)
    buffer = ArrowBuffer(allocator="ROOT", ledger=7, bytes=4 * MIB, buffers=3, address=4096, frames=[],
                         allocated_at="BaseValueVector.allocFixedDataAndValidityBufs", step=2, step_kind="allocate",
                         join="address", call_site=CHUNK, call_site_owner="arrow-open")
    last = report.snapshots[-1]
    assert last.call_sites is not None and report.profile is not None
    report = dataclasses.replace(
        report, profile=dataclasses.replace(report.profile, arrow_debug=True),
        snapshots=[*report.snapshots[:-1], dataclasses.replace(
            last, call_sites=dataclasses.replace(last.call_sites, arrow_buffers=[buffer]))])
    text = render_markdown(report)
    assert "Open Arrow buffers at 'allocated': 1, 4,194,304 B (Arrow's debug allocator is on" in text
    assert (f"| 7 | ROOT | 4,194,304 B | 2 allocate | BaseValueVector.allocFixedDataAndValidityBufs | {CHUNK} | "
            "address |") in text


def test_compare_puts_each_owners_bytes_side_by_side() -> None:
    console = Console(width=200, record=True, color_system=None)
    render_compare_call_sites([("jemalloc", _profiled(4 * MIB, 524288)), ("glibc", _profiled(8 * MIB, 524288))],
                              console)
    lines = [" ".join(line.split()) for line in console.export_text().splitlines()]
    assert "Native call sites by owner at 'allocated' (live bytes)" in " ".join(lines)
    assert "owner jemalloc glibc" in lines
    assert "pool-retained 4.0 MiB 8.0 MiB" in lines
    assert "all live stacks 4.0 MiB 8.0 MiB" in lines
    assert f"glibc: top call site {CHUNK}, 8.0 MiB (pool-retained)" in lines


def test_compare_without_profiles_prints_nothing() -> None:
    console = Console(width=200, record=True, color_system=None)
    base = _profiled(4 * MIB, 524288)
    bare = dataclasses.replace(base, snapshots=[dataclasses.replace(s, call_sites=None) for s in base.snapshots])
    render_compare_call_sites([("jemalloc", bare)], console)
    assert console.export_text().strip() == ""
