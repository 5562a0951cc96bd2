"""The reconciliation: one ledger per snapshot, from Arrow down to the kernel, on changes since the baseline.

Each line is a layer's growth since the baseline; ``delta_to_next`` is what the next layer down adds, said in
words. At the bottom, the process's anonymous RSS growth is split into what the allocator keeps resident, what the
JVM mapped itself (NMT committed minus NMT malloc: heap, metaspace, code cache, thread stacks, GC), and the
remainder nobody explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workbench.figures import BY_KEY, LEDGER
from workbench.units import format_bytes

# Why the next layer down differs from this one; the sentences are in REASONS (and, for the last, in explain_line).
Reason = Literal[
    "arrow-rounding",  # Arrow rounds each buffer up to a power of two
    "netty-chunks",  # the Netty allocation manager takes whole pooled chunks
    "unsafe-mallocs",  # the Unsafe allocation manager mallocs each buffer, plus other Unsafe use
    "jvm-mallocs",  # the JVM's other mallocs tracked by NMT
    "untracked-mallocs",  # mallocs NMT does not see, and size-class rounding
    "fragmentation",  # free space inside the allocator's active pages
    "dirty-pages",  # pages kept resident though unused, and metadata
    "not-resident",  # mapped but not (yet) resident
    "outside-allocator",  # what the kernel counts outside the allocator: JVM mappings and the unexplained rest
]


@dataclass(frozen=True)
class LedgerLine:
    figure: str  # the figure's key: "arrow.allocated_bytes"
    bytes: int  # its change since the baseline
    delta_to_next: int | None  # the next line's bytes minus this one's; None on the last line
    reason: Reason | None  # why the next line differs; None on the last line, or where no reason is known


@dataclass(frozen=True)
class Reconciliation:
    baseline: str  # the label of the snapshot the changes are taken against
    lines: list[LedgerLine]
    jvm_mapped_bytes: int | None  # NMT committed minus NMT malloc growth: the JVM's own mappings
    unexplained_bytes: int | None  # anon RSS growth minus the allocator figure's growth minus JVM mappings
    allocator_figure: str | None  # the allocator figure subtracted for unexplained_bytes (its key); None: none


REASONS: dict[Reason, str] = {
    "arrow-rounding": "Arrow rounds each buffer up to a power of two",
    "netty-chunks": "the Netty allocation manager takes whole pooled chunks (4 MiB) from Unsafe and keeps them "
                    "after close",
    "unsafe-mallocs": "the Unsafe allocation manager mallocs each buffer as accounted; the rest is other Unsafe "
                      "and direct-buffer use",
    "jvm-mallocs": "the JVM's other mallocs (JIT, classes, threads, GC, symbols) tracked by NMT",
    "untracked-mallocs": "mallocs NMT does not see (Python, JPype, pyarrow, libraries) and the allocator's "
                         "size-class rounding",
    "fragmentation": "free space inside the allocator's active pages (fragmentation)",
    "dirty-pages": "pages the allocator keeps resident though unused (dirty, not yet purged) and its metadata",
    "not-resident": "what the allocator mapped but the kernel has not made resident",
}


def _reason(key: str, allocation_manager: str) -> Reason | None:
    """Why the layer below ``key`` in the chain differs from it."""
    reasons: dict[str, Reason] = {
        "arrow.requested_bytes": "arrow-rounding",
        "arrow.allocated_bytes": "netty-chunks" if allocation_manager == "netty" else "unsafe-mallocs",
        "nmt.categories.Other.committed_bytes": "jvm-mallocs",
        "nmt.malloc_total_bytes": "untracked-mallocs",
        "allocator.allocated_bytes": "fragmentation",
        "allocator.active_bytes": "dirty-pages",
        "allocator.mapped_bytes": "not-resident",
    }
    return reasons.get(key)


def _chain(deltas: dict[str, int]) -> list[str]:
    """The ledger's figures this snapshot has, top first, down to the allocator figure nearest the kernel."""
    chain: list[str] = []
    alternative_taken = False
    for figure in LEDGER:
        if figure.key not in deltas or figure.layer == "process" or figure.ledger is None:
            continue  # the kernel's line closes the ledger below the chain
        if figure.ledger.alternative:
            if alternative_taken:
                continue
            alternative_taken = True
        chain.append(figure.key)
    return chain


def reconcile(deltas: dict[str, int], allocation_manager: str, baseline: str) -> Reconciliation | None:
    """The ledger for one snapshot from its deltas against the baseline; None without a process figure."""
    rss = deltas.get("process.anon_rss_bytes")
    if rss is None:
        return None
    chain = _chain(deltas)
    allocator_figure = next((key for key in reversed(chain) if BY_KEY[key].layer == "allocator"), None)
    lines: list[LedgerLine] = []
    for index, key in enumerate(chain):
        following = chain[index + 1] if index + 1 < len(chain) else None
        if following is None:  # the last line above the kernel
            lines.append(LedgerLine(key, deltas[key], rss - deltas[key], "outside-allocator"))
        else:
            lines.append(LedgerLine(key, deltas[key], deltas[following] - deltas[key],
                                    _reason(key, allocation_manager)))
    lines.append(LedgerLine("process.anon_rss_bytes", rss, None, None))
    nmt_total, nmt_malloc = deltas.get("nmt.total_committed_bytes"), deltas.get("nmt.malloc_total_bytes")
    jvm_mapped = nmt_total - nmt_malloc if nmt_total is not None and nmt_malloc is not None else None
    allocator_part = deltas[allocator_figure] if allocator_figure else 0
    return Reconciliation(
        baseline=baseline,
        lines=lines,
        jvm_mapped_bytes=jvm_mapped,
        unexplained_bytes=rss - allocator_part - (jvm_mapped or 0),
        allocator_figure=allocator_figure,
    )


def line_label(line: LedgerLine) -> str:
    """The line's layer as the ledger names it: "Arrow: accounted"."""
    place = BY_KEY[line.figure].ledger if line.figure in BY_KEY else None
    return place.label if place is not None else line.figure


def explain_line(line: LedgerLine, reconciliation: Reconciliation) -> str:
    """Why the next line differs from this one, in words with sizes; "" on the last line."""
    if line.delta_to_next is None:
        return ""
    amount = format_bytes(line.delta_to_next, signed=True)
    if line.reason == "outside-allocator":
        return (f"{amount}: memory the kernel counts outside the allocator: JVM mappings "
                f"{format_bytes(reconciliation.jvm_mapped_bytes, signed=True)} (heap, metaspace, code, stacks) and "
                f"{format_bytes(reconciliation.unexplained_bytes, signed=True)} unexplained")
    return f"{amount}: {REASONS[line.reason]}" if line.reason is not None else amount


def describe_basis(reconciliation: Reconciliation) -> str:
    """What the ledger's figures are: "change since 'baseline'"."""
    return f"change since '{reconciliation.baseline}'"


def explain_unexplained(reconciliation: Reconciliation) -> str:
    """How the unexplained remainder is computed, and what makes it positive or negative."""
    figure = reconciliation.allocator_figure
    name = figure.split(".")[1].removesuffix("_bytes") if figure else "(none)"
    return (
        f"unexplained = anonymous RSS growth - allocator {name} growth - JVM mappings (NMT committed - NMT malloc); "
        "committed-but-untouched JVM memory makes it negative, thread stacks, page tables and libraries' own mmaps "
        "make it positive"
    )
