"""One timeline sample: a flat row of the figures the registry marks as sampled (``samples.jsonl``, one JSON object
a line, appended as taken; ``timeline.parquet`` at the end). The worker's sampler and `exec`'s both build it here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.figures import SAMPLED
from workbench.probes.allocator import AllocatorSnapshot
from workbench.probes.nmt import NmtSummary

Sample = dict[str, Any]  # column -> int bytes, None where a layer has no figure at that moment

# Each sampled figure's column and key path, split once (a sample is taken every 100 ms, its cost is in the report).
_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (figure.column, tuple(figure.key.split("."))) for figure in SAMPLED if figure.column is not None)


def _value(layers: dict[str, object], path: tuple[str, ...]) -> int | None:
    """``Figure.value``: the figure at ``path``, None where a layer has none (dicts looked up without the ABC check)."""
    current: object = layers
    for part in path:
        if current is None:
            return None
        if type(current) is dict or isinstance(current, Mapping):
            current = current.get(part)
        else:
            current = getattr(current, part, None)
    return current if isinstance(current, int) and not isinstance(current, bool) else None


def make_sample(t_ms: float, step: int | None, process_status: dict[str, int] | None, arrow_allocated: int | None,
                allocator: AllocatorSnapshot | None, nmt: NmtSummary | None) -> Sample:
    """The row for one moment: each layer as a snapshot has it, as far as a sample reads it (None: not read)."""
    layers: dict[str, object] = {
        "process": process_status,
        "arrow": {"allocated_bytes": arrow_allocated} if arrow_allocated is not None else None,
        "allocator": allocator,
        "nmt": nmt,
    }
    sample: Sample = {"t_ms": t_ms, "step": step}
    for column, path in _PATHS:
        sample[column] = _value(layers, path)
    return sample
