"""``workbench diff`` for two profiled runs: live bytes per call site, B against A, at every snapshot both have.

A stack is the same in both runs when its frames are. Every live stack is compared where the runs' reader output
(``profile/callsites.json``) is still where the report says; else the reports' top call sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from workbench.protocol.callsites import BadRecording, read_recording
from workbench.report.callsites import stack_name
from workbench.report.model import Report
from workbench.units import format_bytes

TOP_CHANGES = 5  # per snapshot

Frames = tuple[str, ...]


@dataclass(frozen=True)
class CallSiteDiff:
    label: str
    name: str
    frames: Frames
    a_bytes: int
    b_bytes: int

    @property
    def delta_bytes(self) -> int:
        return self.b_bytes - self.a_bytes


def _live(report: Report) -> tuple[dict[str, dict[Frames, int]], dict[Frames, str]]:
    """Per snapshot label, live bytes by frames; and a name for each stack."""
    names: dict[Frames, str] = {}
    live: dict[str, dict[Frames, int]] = {}
    path = Path(report.profile.callsites) if report.profile is not None else None
    recording = None
    if path is not None and path.is_file():
        try:
            recording = read_recording(path)
        except BadRecording:
            recording = None
    if recording is not None:
        stacks = [tuple(stack.frames) for stack in recording.stacks]
        for stack in recording.stacks:
            names[tuple(stack.frames)] = stack_name(stack)
        for snapshot in recording.snapshots:
            live[snapshot.label] = {stacks[site.stack]: site.bytes for site in snapshot.sites}
        return live, names
    for snap in report.snapshots:
        if snap.call_sites is not None:
            live[snap.label] = {tuple(site.frames): site.bytes for site in snap.call_sites.sites}
            names.update((tuple(site.frames), site.name) for site in snap.call_sites.sites)
    return live, names


def diff_call_sites(a: Report, b: Report) -> list[CallSiteDiff]:
    """Per snapshot label both runs profiled (in A's order), the call sites whose live bytes changed most."""
    a_live, a_names = _live(a)
    b_live, b_names = _live(b)
    diffs: list[CallSiteDiff] = []
    for label, a_sites in a_live.items():
        b_sites = b_live.get(label)
        if b_sites is None:
            continue
        changed = [CallSiteDiff(label, b_names.get(frames) or a_names.get(frames, "?"), frames,
                                a_sites.get(frames, 0), b_sites.get(frames, 0))
                   for frames in {*a_sites, *b_sites} if a_sites.get(frames, 0) != b_sites.get(frames, 0)]
        diffs += sorted(changed, key=lambda d: (-abs(d.delta_bytes), d.name))[:TOP_CHANGES]
    return diffs


def render_call_site_diff(a: Report, b: Report, console: Console) -> None:
    """The largest call-site changes per snapshot, when both runs recorded call sites."""
    if not any(s.call_sites for s in a.snapshots) or not any(s.call_sites for s in b.snapshots):
        return
    diffs = diff_call_sites(a, b)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold", title_justify="left",
                  title=Text("Native call sites: the largest changes, B - A", style="bold"))
    for column, justify in (("snapshot", "left"), ("allocated by", "left"), ("A", "right"), ("B", "right"),
                            ("B - A", "right")):
        table.add_column(column, justify=justify, no_wrap=column != "allocated by")  # type: ignore[arg-type]
    previous = None
    for d in diffs:
        if previous is not None and d.label != previous:
            table.add_section()
        table.add_row(d.label if d.label != previous else "", d.name, format_bytes(d.a_bytes), format_bytes(d.b_bytes),
                      Text(format_bytes(d.delta_bytes, signed=True), style="yellow" if d.delta_bytes > 0 else ""))
        previous = d.label
    if diffs:
        console.print(table)
    else:
        console.print(Text("Native call sites: no stack's live bytes differ between A and B.", style="dim"))
