"""The kernel's view of a process: /proc/<pid>/smaps_rollup and smaps (what ``pmap -x PID | grep anon`` shows)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$")
_FIELD = re.compile(r"^(\w+):\s+(\d+) kB$")


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


def parse_smaps(text: str) -> list[Mapping]:
    """Mappings from the text of /proc/<pid>/smaps."""
    mappings: list[Mapping] = []
    header: re.Match[str] | None = None
    fields: dict[str, int] = {}

    def flush() -> None:
        if header is not None:
            start, end = int(header.group(1), 16), int(header.group(2), 16)
            mappings.append(
                Mapping(
                    start=start,
                    end=end,
                    perms=header.group(3),
                    name=header.group(4).strip(),
                    size_bytes=end - start,
                    rss_bytes=fields.get("Rss", 0) * 1024,
                    anon_bytes=fields.get("Anonymous", 0) * 1024,
                )
            )

    for line in text.splitlines():
        field = _FIELD.match(line)
        if field:
            fields[field.group(1)] = int(field.group(2))
            continue
        match = _HEADER.match(line)
        if match:
            flush()
            header, fields = match, {}
    flush()
    return mappings


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """The byte totals of /proc/<pid>/smaps_rollup, by field name (``Rss``, ``Anonymous``, ...)."""
    totals = {}
    for line in text.splitlines():
        field = _FIELD.match(line)
        if field:
            totals[field.group(1)] = int(field.group(2)) * 1024
    return totals


def summarize(mappings: list[Mapping], rollup: dict[str, int] | None, top: int = 10) -> ProcessSnapshot:
    """Totals and the largest anonymous mappings; the rollup's totals are used when there is one."""
    anonymous = [m for m in mappings if m.is_anonymous]
    if rollup is None:
        rollup = {"Rss": sum(m.rss_bytes for m in mappings), "Anonymous": sum(m.anon_bytes for m in mappings)}
    return ProcessSnapshot(
        rss_bytes=rollup["Rss"],
        anon_rss_bytes=rollup["Anonymous"],
        anon_mappings=len(anonymous),
        anon_mappings_rss_bytes=sum(m.rss_bytes for m in anonymous),
        largest_anon_mappings=tuple(sorted(anonymous, key=lambda m: (-m.rss_bytes, m.start))[:top]),
    )


def read_process(pid: int | str = "self", top: int = 10) -> tuple[ProcessSnapshot, str]:
    """The process's memory as the kernel counts it, and the raw smaps text it was computed from."""
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as f:
        smaps = f.read()
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            rollup: dict[str, int] | None = parse_smaps_rollup(f.read())
    except FileNotFoundError:
        rollup = None
    return summarize(parse_smaps(smaps), rollup, top), smaps
