"""The kernel's view of a process: /proc/<pid>/smaps (what ``pmap -x PID | grep anon`` shows)."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Mapping:
    """One mapping of the address space, as smaps lists it."""

    start: int
    end: int
    perms: str
    name: str
    size_bytes: int
    rss_bytes: int
    anon_bytes: int

    @property
    def is_anonymous(self) -> bool:
        # pmap prints "[ anon ]" for mappings without a file; the brk heap is anonymous memory too.
        return self.name == "" or self.name == "[heap]" or self.name.startswith("[anon:")


@dataclass(frozen=True)
class ProcessSnapshot:
    rss_bytes: int
    anon_rss_bytes: int
    anon_mappings: int
    anon_mappings_rss_bytes: int
    largest_anon_mappings: tuple[Mapping, ...]
    # How each mapping's Rss and Anonymous were read: "pagemap-scan" (/proc/PID/maps and one PAGEMAP_SCAN ioctl,
    # Linux 6.7+) or "smaps" (/proc/PID/smaps); the figures are the same.
    source: str = "smaps"


# Only the lines a snapshot needs: a mapping's header, its Rss and its Anonymous; the regex engine skips the rest.
_SMAPS_LINES = re.compile(
    r"^(?:([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+ *(.*)|Rss: +(\d+) kB|Anonymous: +(\d+) kB)$", re.MULTILINE
)


def parse_smaps(text: str) -> list[Mapping]:
    """Mappings from the text of /proc/<pid>/smaps (a JVM has hundreds: this runs at every snapshot)."""
    mappings: list[Mapping] = []
    start = end = rss_kib = anon_kib = 0
    perms = name = ""
    seen_header = False

    def flush() -> None:
        if seen_header:
            mappings.append(Mapping(start, end, perms, name, end - start, rss_kib * 1024, anon_kib * 1024))

    for match in _SMAPS_LINES.finditer(text):
        low, high, mapping_perms, mapping_name, rss, anon = match.groups()
        if low is not None:
            flush()
            start, end, perms, name = int(low, 16), int(high, 16), mapping_perms, mapping_name.strip()
            rss_kib = anon_kib = 0
            seen_header = True
        elif rss is not None:
            rss_kib = int(rss)
        else:
            anon_kib = int(anon)
    flush()
    return mappings


def summarize(mappings: list[Mapping], top: int = 10, source: str = "smaps") -> ProcessSnapshot:
    """Totals (what smaps_rollup would sum, without walking the page tables a second time) and the largest
    anonymous mappings; one pass (at every snapshot, over some 500 mappings in the worker)."""
    rss = anon = anonymous_rss = 0
    anonymous: list[Mapping] = []
    for mapping in mappings:
        rss += mapping.rss_bytes
        anon += mapping.anon_bytes
        if mapping.is_anonymous:
            anonymous.append(mapping)
            anonymous_rss += mapping.rss_bytes
    return ProcessSnapshot(
        rss_bytes=rss,
        anon_rss_bytes=anon,
        anon_mappings=len(anonymous),
        anon_mappings_rss_bytes=anonymous_rss,
        largest_anon_mappings=tuple(heapq.nsmallest(top, anonymous, key=lambda m: (-m.rss_bytes, m.start))),
        source=source,
    )


def read_mappings(pid: int | str = "self") -> tuple[list[Mapping], str]:
    """Every mapping of the process with its resident and anonymous bytes, and the raw smaps text."""
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as f:
        smaps = f.read()
    return parse_smaps(smaps), smaps


def read_process(pid: int | str = "self", top: int = 10) -> tuple[ProcessSnapshot, str]:
    """The process's memory as the kernel counts it, and the raw smaps text it was computed from."""
    mappings, smaps = read_mappings(pid)
    return summarize(mappings, top), smaps
