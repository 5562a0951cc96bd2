"""The cheap part of the kernel's view, for sampling: the process's RSS counters (no page-table walk, unlike smaps)."""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE")


def read_status(pid: int | str = "self") -> dict[str, int]:
    """``rss_bytes`` and ``anon_rss_bytes`` as the kernel's counters have them (they lag by up to 64 pages per thread):
    ``/proc/<pid>/status``'s VmRSS and RssAnon, read from ``/proc/<pid>/statm``, which prints the same counters in
    pages (resident = anonymous + file + shmem, shared = file + shmem) in one short line, at about half the cost of
    ``status`` (the timeline samples it every 100 ms). Empty for a process without memory (as ``status`` has it)."""
    fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
    try:
        fields = os.read(fd, 512).split()
    finally:
        os.close(fd)
    resident, shared = int(fields[1]), int(fields[2])
    if resident == 0:
        return {}  # no memory (a zombie, an exiting process): status has no VmRSS line then, and 0 is no measurement
    return {"rss_bytes": resident * _PAGE, "anon_rss_bytes": (resident - shared) * _PAGE}
