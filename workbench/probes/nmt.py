"""HotSpot's Native Memory Tracking summary, parsed from the text of JDK 17 and of JDK 21+ (25)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCALE = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_AMOUNT = r"(\d+)\s*(KB|MB|GB|B)?"
_TOTAL = re.compile(rf"^Total: reserved={_AMOUNT}, committed={_AMOUNT}")
_TOTAL_MALLOC = re.compile(rf"^\s+malloc: {_AMOUNT} #(\d+)")
_CATEGORY = re.compile(rf"^-\s*(.+?)\s+\(reserved={_AMOUNT}, committed={_AMOUNT}\)")
_MALLOC = re.compile(rf"^\s+\(malloc={_AMOUNT}(?: tag=\S+)? #(\d+)\)")
NOT_ENABLED = "Native memory tracking is not enabled"


@dataclass(frozen=True)
class NmtCategory:
    reserved_bytes: int
    committed_bytes: int
    malloc_bytes: int | None
    malloc_count: int | None


@dataclass(frozen=True)
class NmtSummary:
    total_reserved_bytes: int
    total_committed_bytes: int
    # JDK 21+ prints the malloc total; on JDK 17 it is the sum over categories (the same number).
    malloc_total_bytes: int
    malloc_total_count: int
    categories: dict[str, NmtCategory]


def _bytes(number: str, unit: str | None) -> int:
    return int(number) * _SCALE[unit or ""]


def parse_summary(text: str) -> NmtSummary | None:
    """The summary of ``VM.native_memory summary`` (any scale), or None when NMT is off."""
    if NOT_ENABLED.lower() in text.lower():
        return None
    total = None
    total_malloc: tuple[int, int] | None = None
    categories: dict[str, NmtCategory] = {}
    name: str | None = None
    amounts: tuple[int, int] = (0, 0)
    malloc: tuple[int, int] | None = None

    def flush() -> None:
        if name is not None:
            categories[name] = NmtCategory(
                reserved_bytes=amounts[0],
                committed_bytes=amounts[1],
                malloc_bytes=malloc[0] if malloc else None,
                malloc_count=malloc[1] if malloc else None,
            )

    for line in text.splitlines():
        if m := _TOTAL.match(line):
            total = (_bytes(m.group(1), m.group(2)), _bytes(m.group(3), m.group(4)))
        elif name is None and (m := _TOTAL_MALLOC.match(line)):
            total_malloc = (_bytes(m.group(1), m.group(2)), int(m.group(3)))
        elif m := _CATEGORY.match(line):
            flush()
            name = m.group(1)
            amounts = (_bytes(m.group(2), m.group(3)), _bytes(m.group(4), m.group(5)))
            malloc = None
        elif name is not None and malloc is None and (m := _MALLOC.match(line)):
            malloc = (_bytes(m.group(1), m.group(2)), int(m.group(3)))
    flush()
    if total is None:
        raise ValueError("not an NMT summary: no 'Total: reserved=..., committed=...' line")
    if total_malloc is None:
        total_malloc = (
            sum(c.malloc_bytes or 0 for c in categories.values()),
            sum(c.malloc_count or 0 for c in categories.values()),
        )
    return NmtSummary(
        total_reserved_bytes=total[0],
        total_committed_bytes=total[1],
        malloc_total_bytes=total_malloc[0],
        malloc_total_count=total_malloc[1],
        categories=categories,
    )
