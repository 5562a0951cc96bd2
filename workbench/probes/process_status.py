"""The cheap part of the kernel's view, for sampling: /proc/<pid>/status (no page-table walk, unlike smaps)."""

from __future__ import annotations

_FIELDS = {b"VmRSS:": "rss_bytes", b"RssAnon:": "anon_rss_bytes"}


def read_status(pid: int | str = "self") -> dict[str, int]:
    """``rss_bytes`` and ``anon_rss_bytes`` as the kernel's counters have them (they lag by up to 64 pages per thread)."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            key = line.split(maxsplit=1)[0] if line else b""
            if key in _FIELDS:
                values[_FIELDS[key]] = int(line.split()[1]) * 1024
    return values
