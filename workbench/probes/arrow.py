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


def read_arrow(root_allocator: Any, requested_bytes: int) -> ArrowSnapshot | None:
    """The root allocator's figures, or None while the scenario has no root allocator."""
    if root_allocator is None:
        return None
    return ArrowSnapshot(
        allocated_bytes=int(root_allocator.getAllocatedMemory()),
        peak_bytes=int(root_allocator.getPeakMemoryAllocation()),
        requested_bytes=requested_bytes,
    )
