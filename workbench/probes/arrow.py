"""Arrow's own accounting: what its RootAllocator says it has handed out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ArrowSnapshot:
    allocated_bytes: int
    peak_bytes: int
    # What the open vectors asked for (values * width + validity bits), before Arrow's power-of-two rounding.
    requested_bytes: int


def read_arrow(root_allocators: list[Any], requested_bytes: int) -> ArrowSnapshot | None:
    """The root allocators' figures summed (open or closed), or None while the scenario has none."""
    if not root_allocators:
        return None
    return ArrowSnapshot(
        allocated_bytes=sum(int(root.getAllocatedMemory()) for root in root_allocators),
        peak_bytes=sum(int(root.getPeakMemoryAllocation()) for root in root_allocators),
        requested_bytes=requested_bytes,
    )
