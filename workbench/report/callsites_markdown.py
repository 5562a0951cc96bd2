"""The Markdown report's call-site section (``--profile``): the last snapshot's top stacks and, with
``--profile-buffers``, its open Arrow buffers, as tables (the sentences are in the findings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from workbench.report.callsites import OWNER_NAMES, last_profiled, step_short
from workbench.report.model import Report
from workbench.units import format_bytes

TOP_SHOWN = 10
Table = Callable[[Sequence[str], Sequence[str], Sequence[Sequence[str]]], list[str]]


def call_site_section(report: Report, table: Table) -> list[str]:
    """``## Native call sites``: the top call sites of the last profiled snapshot, its owners, its open Arrow
    buffers; [] when the run was not profiled. ``table`` writes a GFM table (cells escaped)."""
    shown = last_profiled(report)
    if shown is None:
        return []
    last, sites = shown.snapshot, shown.sites
    lines = ["## Native call sites", "",
             f"At '{last.label}': {sites.live_bytes:,} B live in {sites.stacks:,} stacks ({shown.tool}, "
             f"{shown.interval}).", ""]
    lines += table(["live", "count", "since previous", "owner", "step", "allocated by"], "rrrlll",
                   [[format_bytes(s.bytes), f"{s.count:,}", format_bytes(s.delta_bytes, signed=True),
                     s.owner + (" (leak)" if s.leak else ""), step_short(s), s.name] for s in sites.sites[:TOP_SHOWN]])
    lines += ["", *table(["owner", "live"], "lr", [[OWNER_NAMES[owner], f"{value:,} B"] for owner, value in
                                                   sorted(sites.owners.items(), key=lambda item: -item[1])])]
    buffers = sites.arrow_buffers
    if shown.arrow_debug and buffers is not None:
        lines += ["", f"Open Arrow buffers at '{last.label}': {len(buffers):,}, {sum(b.bytes for b in buffers):,} B "
                      "(Arrow's debug allocator is on: -Darrow.memory.debug.allocator=true; its logs are on the Java "
                      "heap).", ""]
        if buffers:
            lines += table(["ledger", "allocator", "size", "step", "allocated at (Arrow's stack)", "native call site",
                            "join"], "rlrllll",
                           [[str(b.ledger), b.allocator, f"{b.bytes:,} B",
                             "start-up" if b.step is None else f"{b.step} {b.step_kind or ''}".strip(),
                             b.allocated_at, b.call_site or "(none recorded)", b.join or "-"] for b in buffers])
    return lines
