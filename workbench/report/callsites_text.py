"""The terminal report's call-site section (``--profile``): the last snapshot's top stacks, the largest growth
between snapshots."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.probes.callsites import OWNERS, CallSite
from workbench.report.callsites import OWNER_NAMES, last_profiled, step_short
from workbench.report.model import Report
from workbench.units import format_bytes

TOP_SHOWN = 8
GROWTH_PER_SNAPSHOT = 2


def _owner(site: CallSite) -> Text:
    text = Text(site.owner, style="bold red" if site.leak else "")
    if site.leak:
        text.append(" (leak)")
    return text


def render_call_sites(report: Report, console: Console) -> None:
    """The call-site tables, when the run was profiled; nothing otherwise."""
    shown = last_profiled(report)
    if shown is None:
        return
    last, sites = shown.snapshot, shown.sites
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, title_justify="left", title=Text(
        f"Native call sites at '{last.label}': {format_bytes(sites.live_bytes)} live in {sites.stacks:,} stacks "
        f"({shown.tool}, {shown.interval})", style="bold"))
    for column, justify in (("live", "right"), ("count", "right"), ("since previous", "right"), ("owner", "left"),
                            ("step", "left"), ("allocated by", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "allocated by")  # type: ignore[arg-type]
    for site in sites.sites[:TOP_SHOWN]:
        table.add_row(format_bytes(site.bytes), f"{site.count:,}", format_bytes(site.delta_bytes, signed=True),
                      _owner(site), step_short(site), site.name)
    console.print(table)
    owners = " · ".join(f"{OWNER_NAMES[o]} {format_bytes(b)}" for o, b in sorted(sites.owners.items(),
                                                                                   key=lambda item: -item[1]))
    console.print(Text(f"By owner: {owners}. Every stack of every snapshot: {report.run_dir or '.'}/profile/"
                       "collapsed/<label>.txt.", style="dim"))
    growth = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, title_justify="left",
                   title=Text("Largest changes between snapshots", style="bold"))
    for column, justify in (("snapshot", "left"), ("change", "right"), ("live", "right"), ("owner", "left"),
                            ("step", "left"), ("allocated by", "left")):
        growth.add_column(column, justify=justify, no_wrap=column != "allocated by")  # type: ignore[arg-type]
    rows = 0
    for snapshot in shown.profiled[1:]:
        assert snapshot.call_sites is not None
        for site in snapshot.call_sites.growth[:GROWTH_PER_SNAPSHOT]:
            growth.add_row(snapshot.label, format_bytes(site.delta_bytes, signed=True), format_bytes(site.bytes),
                           _owner(site), step_short(site), site.name)
            rows += 1
    if rows:
        console.print(growth)
    render_arrow_buffers(report, console)


def render_arrow_buffers(report: Report, console: Console) -> None:
    """``--profile-buffers``: the open Arrow buffers of the last snapshot that listed them."""
    listed = [s for s in report.snapshots if s.call_sites is not None and s.call_sites.arrow_buffers is not None]
    if not listed or report.profile is None or not report.profile.arrow_debug:
        return
    last = listed[-1]
    assert last.call_sites is not None and last.call_sites.arrow_buffers is not None
    buffers = last.call_sites.arrow_buffers
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, title_justify="left", title=Text(
        f"Open Arrow buffers at '{last.label}': {len(buffers):,}, {format_bytes(sum(b.bytes for b in buffers))} "
        "(Arrow's debug allocator is on: -Darrow.memory.debug.allocator=true; its logs are on the Java heap)",
        style="bold"))
    for column, justify in (("ledger", "right"), ("allocator", "left"), ("size", "right"), ("step", "left"),
                            ("allocated at (Arrow's stack)", "left"), ("native call site", "left"), ("join", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "native call site")  # type: ignore[arg-type]
    for buffer in buffers[:TOP_SHOWN]:
        step = "start-up" if buffer.step is None else f"{buffer.step} {buffer.step_kind or ''}".strip()
        table.add_row(str(buffer.ledger), buffer.allocator, format_bytes(buffer.bytes), step, buffer.allocated_at,
                      buffer.call_site or "(none recorded)", buffer.join or "-")
    console.print(table)
    if len(buffers) > TOP_SHOWN:
        console.print(Text(f"{len(buffers) - TOP_SHOWN:,} more in report.json (snapshots[].call_sites."
                           "arrow_buffers).", style="dim"))


def render_compare_call_sites(runs: Sequence[tuple[str, Report]], console: Console) -> None:
    """``compare --profile``: each owner's live bytes per allocator side by side at the last profiled snapshot, and
    each run's top call site; nothing when no run was profiled."""
    lasts = [(label, next((s for s in reversed(report.snapshots) if s.call_sites is not None), None))
             for label, report in runs]
    if not any(snapshot is not None for _, snapshot in lasts):
        return
    labels = sorted({snapshot.label for _, snapshot in lasts if snapshot is not None})
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, title_justify="left", title=Text(
        f"Native call sites by owner at '{'/'.join(labels)}' (live bytes)", style="bold"))
    table.add_column("owner", no_wrap=True, min_width=len("open Arrow buffers"))
    for label, _ in lasts:
        table.add_column(Text(label), justify="right", no_wrap=True)
    for owner in OWNERS:
        values = [snapshot.call_sites.owners.get(owner) if snapshot and snapshot.call_sites else None
                  for _, snapshot in lasts]
        if any(values):
            table.add_row(OWNER_NAMES[owner], *[format_bytes(v) if v is not None else Text("-", style="dim")
                                                for v in values])
    table.add_row("all live stacks", *[format_bytes(s.call_sites.live_bytes) if s and s.call_sites
                                       else Text("-", style="dim") for _, s in lasts])
    console.print(table)
    for label, snapshot in lasts:
        if snapshot is not None and snapshot.call_sites is not None and snapshot.call_sites.sites:
            top = snapshot.call_sites.sites[0]
            console.print(Text(f"{label}: top call site {top.name}, {format_bytes(top.bytes)} ({top.owner})",
                               style="dim"))
