"""One timeline sample: a flat row of the figures the registry marks as sampled (``samples.jsonl``, one JSON object
a line, appended as taken; ``timeline.parquet`` at the end). The worker's sampler and `exec`'s both build it here."""

from __future__ import annotations

from typing import Any

from workbench.figures import SAMPLED
from workbench.probes.allocator import AllocatorSnapshot
from workbench.probes.nmt import NmtSummary

Sample = dict[str, Any]  # column -> int bytes, None where a layer has no figure at that moment


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
    sample.update((figure.column, figure.value(layers)) for figure in SAMPLED if figure.column is not None)
    return sample
