"""The reconciliation: one ledger per snapshot, from Arrow down to the kernel, on changes since the baseline.

Each line is a layer's growth since the baseline; ``delta_to_next`` is what the next layer down adds, said in
words. At the bottom, the process's anonymous RSS growth is split into what the allocator keeps resident, what the
JVM mapped itself (NMT committed minus NMT malloc: heap, metaspace, code cache, thread stacks, GC), and the
remainder nobody explains.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.units import format_bytes


@dataclass(frozen=True)
class LedgerLine:
    layer: str
    bytes: int
    delta_to_next: int | None  # None on the last line
    explanation: str


@dataclass(frozen=True)
class Reconciliation:
    basis: str  # what the figures are: changes since which snapshot
    lines: list[LedgerLine]
    jvm_mapped_bytes: int | None  # NMT committed minus NMT malloc growth: the JVM's own mappings
    unexplained_bytes: int | None  # anon RSS growth minus allocator resident (or best figure) minus JVM mappings
    explanation: str


def _why(layer: str, gap: int, allocation_manager: str) -> str:
    """Why the next layer differs from this one by ``gap`` bytes."""
    amount = format_bytes(gap, signed=True)
    reasons = {
        "arrow.requested_bytes": f"{amount}: Arrow rounds each buffer up to a power of two",
        "arrow.allocated_bytes": (
            f"{amount}: the Netty allocation manager takes whole pooled chunks (4 MiB) from Unsafe and keeps them "
            "after close" if allocation_manager == "netty"
            else f"{amount}: the Unsafe allocation manager mallocs each buffer as accounted; the rest is other "
                 "Unsafe and direct-buffer use"
        ),
        "nmt.categories.Other.committed_bytes": f"{amount}: the JVM's other mallocs (JIT, classes, threads, GC, "
                                                 "symbols) tracked by NMT",
        "nmt.malloc_total_bytes": f"{amount}: mallocs NMT does not see (Python, JPype, pyarrow, libraries) and the "
                                  "allocator's size-class rounding",
        "allocator.allocated_bytes": f"{amount}: free space inside the allocator's active pages (fragmentation)",
        "allocator.active_bytes": f"{amount}: pages the allocator keeps resident though unused (dirty, not yet "
                                  "purged) and its metadata",
        "allocator.mapped_bytes": f"{amount}: what the allocator mapped but the kernel has not made resident",
    }
    return reasons.get(layer, amount)


LAYER_NAMES = {
    "arrow.requested_bytes": "Arrow: requested by vectors",
    "arrow.allocated_bytes": "Arrow: accounted",
    "nmt.categories.Other.committed_bytes": "NMT: Other (Unsafe, direct buffers)",
    "nmt.malloc_total_bytes": "NMT: malloc total",
    "allocator.allocated_bytes": "allocator: allocated",
    "allocator.active_bytes": "allocator: active",
    "allocator.resident_bytes": "allocator: resident",
    "allocator.mapped_bytes": "allocator: mapped",
    "process.anon_rss_bytes": "process: anonymous RSS",
}


def reconcile(deltas: dict[str, int], allocation_manager: str, baseline: str) -> Reconciliation | None:
    """The ledger for one snapshot from its deltas against the baseline; None without a process figure."""
    rss = deltas.get("process.anon_rss_bytes")
    if rss is None:
        return None
    allocator_bottom = next(
        (k for k in ("allocator.resident_bytes", "allocator.mapped_bytes", "allocator.allocated_bytes") if k in deltas),
        None,
    )
    chain: list[str] = [
        key for key in (
            "arrow.requested_bytes", "arrow.allocated_bytes", "nmt.categories.Other.committed_bytes",
            "nmt.malloc_total_bytes", "allocator.allocated_bytes", "allocator.active_bytes",
        ) if key in deltas
    ]
    if allocator_bottom is not None and allocator_bottom not in chain:
        chain.append(allocator_bottom)
    lines: list[LedgerLine] = []
    for index, key in enumerate(chain):
        following = chain[index + 1] if index + 1 < len(chain) else None
        gap = deltas[following] - deltas[key] if following else None
        lines.append(LedgerLine(LAYER_NAMES[key], deltas[key], gap,
                                _why(key, gap, allocation_manager) if gap is not None else ""))
    nmt_total, nmt_malloc = deltas.get("nmt.total_committed_bytes"), deltas.get("nmt.malloc_total_bytes")
    jvm_mapped = nmt_total - nmt_malloc if nmt_total is not None and nmt_malloc is not None else None
    allocator_part = deltas[allocator_bottom] if allocator_bottom else 0
    unexplained = rss - allocator_part - (jvm_mapped or 0)
    if lines:
        last = lines[-1]
        lines[-1] = LedgerLine(
            last.layer, last.bytes, rss - last.bytes,
            f"{format_bytes(rss - last.bytes, signed=True)}: memory the kernel counts outside the allocator: "
            f"JVM mappings {format_bytes(jvm_mapped, signed=True)} (heap, metaspace, code, stacks) and "
            f"{format_bytes(unexplained, signed=True)} unexplained",
        )
    lines.append(LedgerLine(LAYER_NAMES["process.anon_rss_bytes"], rss, None, ""))
    return Reconciliation(
        basis=f"change since '{baseline}'",
        lines=lines,
        jvm_mapped_bytes=jvm_mapped,
        unexplained_bytes=unexplained,
        explanation=(
            "unexplained = anonymous RSS growth - allocator "
            f"{allocator_bottom.split('.')[1].removesuffix('_bytes') if allocator_bottom else '(none)'} growth - "
            "JVM mappings (NMT committed - NMT malloc); committed-but-untouched JVM memory makes it negative, "
            "thread stacks, page tables and libraries' own mmaps make it positive"
        ),
    )
