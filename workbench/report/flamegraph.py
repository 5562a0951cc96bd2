"""report.html's call-site section (``--profile``): an interactive flame graph of live native memory with a snapshot
selector, and each snapshot's call-site table. Self-contained: the data is embedded, the script is inline, nothing
is fetched.

The flame graph is drawn from every live stack of the run (the reader's ``profile/callsites.json`` in the run
directory); when that file is not there (a report.json moved elsewhere) from the report's top call sites.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from workbench.protocol.callsites import CALLSITES_FILE, PROFILE_DIR, BadRecording, read_recording
from workbench.report.callsites import OWNER_NAMES, step_short
from workbench.report.model import Report
from workbench.units import format_bytes

# A frame narrower than this share of its snapshot's bytes is folded into its parent: too thin to see or click.
MIN_SHARE = 1 / 4000


class FlameSnapshot(TypedDict):
    label: str
    total: int
    tree: list[Any]  # [frame index, bytes, [children...]]


class FlameData(TypedDict):
    frames: list[str]
    kinds: str  # one letter per frame index: J Java, N native, C C++, K kernel
    snapshots: list[FlameSnapshot]
    source: str


@dataclass(frozen=True)
class SiteRow:
    bytes: str
    exact: int
    count: int
    delta: str
    owner: str
    step: str
    name: str
    leak: bool


def _tree(stacks: list[tuple[list[int], int]], total: int) -> list[Any]:
    root: dict[int, Any] = {}
    for frames, size in stacks:
        level = root
        for frame in frames:
            node = level.setdefault(frame, [0, {}])
            node[0] += size
            level = node[1]
    floor = total * MIN_SHARE

    def pack(level: dict[int, Any]) -> list[Any]:
        return [[frame, node[0], pack(node[1])] for frame, node in sorted(level.items(), key=lambda kv: -kv[1][0])
                if node[0] >= floor]

    return [-1, total, pack(root)]


def flame_data(report: Report, run_dir: Path | None) -> FlameData | None:
    """Every snapshot's live stacks as trees over one table of frame names; None when the run has no call sites."""
    profiled = [s for s in report.snapshots if s.call_sites is not None]
    if not profiled:
        return None
    names: dict[tuple[str, str], int] = {}

    def index(name: str, kind: str) -> int:
        return names.setdefault((name, kind), len(names))

    snapshots: list[FlameSnapshot] = []
    source = "every live stack (profile/callsites.json)"
    recording = None
    if run_dir is not None and (run_dir / PROFILE_DIR / CALLSITES_FILE).is_file():
        try:
            recording = read_recording(run_dir / PROFILE_DIR / CALLSITES_FILE)
        except BadRecording:
            recording = None
    if recording is not None:
        encoded = [[index(f, stack.kinds[i] if i < len(stack.kinds) else "N") for i, f in enumerate(stack.frames)]
                   for stack in recording.stacks]
        for recorded in recording.snapshots:
            stacks = [(encoded[site.stack], site.bytes) for site in recorded.sites]
            snapshots.append({"label": recorded.label, "total": recorded.live_bytes,
                              "tree": _tree(stacks, recorded.live_bytes)})
    else:
        source = "the report's top call sites (profile/callsites.json is not in the run directory)"
        for snapshot in profiled:
            assert snapshot.call_sites is not None
            stacks = [([index(f, s.kinds[i] if i < len(s.kinds) else "N") for i, f in enumerate(s.frames)], s.bytes)
                      for s in snapshot.call_sites.sites]
            total = sum(size for _, size in stacks)
            snapshots.append({"label": snapshot.label, "total": total, "tree": _tree(stacks, total)})
    ordered = sorted(names, key=names.__getitem__)
    return {"frames": [name for name, _ in ordered], "kinds": "".join(kind for _, kind in ordered),
            "snapshots": snapshots, "source": source}


def _rows(report: Report) -> dict[str, list[SiteRow]]:
    rows: dict[str, list[SiteRow]] = {}
    for snapshot in report.snapshots:
        if snapshot.call_sites is None:
            continue
        rows[snapshot.label] = [
            SiteRow(bytes=format_bytes(s.bytes), exact=s.bytes, count=s.count,
                    delta=format_bytes(s.delta_bytes, signed=True), owner=s.owner,
                    step=step_short(s), name=s.name,
                    leak=s.leak)
            for s in snapshot.call_sites.sites]
    return rows


def _script_json(data: object) -> str:
    """JSON safe inside a <script> element: no "</script>", no "<!--" (frame names hold "<init>")."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


@functools.cache
def flame_script() -> str:
    """The flame graph's script, exactly as inlined (the page's Content-Security-Policy allows it by its hash); read
    once per process, like report.html's other scripts."""
    return (resources.files("workbench.report") / "templates" / "flamegraph.js").read_text(encoding="utf-8")


def call_sites_context(report: Report, run_dir: Path | None) -> dict[str, Any] | None:
    """What templates/flamegraph.html.j2 (included by report.html.j2 as ``call_sites``) draws; None when the run
    recorded no call sites."""
    data = flame_data(report, run_dir)
    if data is None and report.profile is None:
        return None
    owners = {s.label: [(OWNER_NAMES[o], format_bytes(b)) for o, b in sorted(s.call_sites.owners.items(),
                                                                              key=lambda item: -item[1])]
              for s in report.snapshots if s.call_sites is not None}
    return {
        "profile": report.profile, "data_json": _script_json(data) if data else None,
        "source": data["source"] if data else "", "rows": _rows(report), "owners": owners,
        "labels": [s["label"] for s in data["snapshots"]] if data else [],
        "interval": format_bytes(report.profile.interval_bytes) if report.profile else "",
        "flame_js": flame_script() if data else None,
        "buffers": _buffer_rows(report),
    }


def _buffer_rows(report: Report) -> dict[str, list[dict[str, str]]]:
    """``--profile-buffers``: each snapshot's open Arrow buffers, as the table shows them; {} when it was off."""
    if report.profile is None or not report.profile.arrow_debug:
        return {}
    return {s.label: [{"ledger": str(b.ledger), "allocator": b.allocator, "bytes": format_bytes(b.bytes),
                       "exact": f"{b.bytes:,}", "step": "start-up" if b.step is None else
                       f"{b.step} {b.step_kind or ''}".strip(), "at": b.allocated_at,
                       "call_site": b.call_site or "(none recorded)", "join": b.join or "-"}
                      for b in s.call_sites.arrow_buffers]
            for s in report.snapshots if s.call_sites is not None and s.call_sites.arrow_buffers is not None}
