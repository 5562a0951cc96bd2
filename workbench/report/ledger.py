"""The reconciliation: one ledger per snapshot, from Arrow down to the kernel, on changes since the baseline.

Two views. The chain (``lines``): each line is a layer's growth since the baseline; ``delta_to_next`` is what the
next layer down adds, said in words. The owners (``owners``, when the worker attributed its mappings by address):
the anonymous RSS split by mapping into the JVM's regions, the threads' stacks, glibc's arenas, files' private
pages and the other anonymous mappings; of the last, Python's pymalloc pools and what the allocator holds (its own
figure, see ``malloc_claim``) are named, and the rest, whatever its sign, is ``unexplained_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workbench.figures import BY_KEY, LEDGER
from workbench.probes.allocator import SizeClass
from workbench.probes.regions import AddressAttribution
from workbench.units import format_bytes

MIB = 1024 * 1024

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
class OwnerLine:
    """One owner of resident anonymous memory, found by address (``probes/regions.py`` names the owners)."""

    owner: str  # "java-heap", "class-space", "metaspace", "code", "gc", "cds", "thread-stacks", "jvm-other",
    # "malloc-arenas", "file-private", "anonymous-mmaps"
    resident_bytes: int  # smaps' Anonymous over this owner's mappings, at this snapshot
    delta_bytes: int  # its change since the baseline
    # The other layers' figures for the same memory, as changes since the baseline (None: not measured, NMT off).
    beside: dict[str, int | None]


@dataclass(frozen=True)
class MallocClaim:
    """What the allocator says it holds of the anonymous mappings outside the JVM: its own figure, uncapped."""

    figure: str  # the allocator's figure taken ("allocator.resident_bytes"; glibc "allocator.raw.hblkhd")
    figure_bytes: int  # that figure at this snapshot
    claimed_delta: int  # its change since the baseline: all of it is claimed, whatever the kernel has there


@dataclass(frozen=True)
class Rounding:
    """Size-class rounding of the large allocations made since the baseline: requested (NMT 'Other' malloc, or
    Arrow's accounting) against the jemalloc size class the new extents are in."""

    requested_bytes: int
    extents: int  # new extents in that class since the baseline
    class_bytes: int  # the size class
    rounding_bytes: int  # extents * class_bytes - requested_bytes
    requested_from: str  # the figure the requested bytes are ("nmt.categories.Other.malloc_bytes", ...)


@dataclass(frozen=True)
class Reconciliation:
    baseline: str  # the label of the snapshot the changes are taken against
    lines: list[LedgerLine]
    jvm_mapped_bytes: int | None  # NMT committed minus NMT malloc growth: the JVM's own mappings
    # By address (owners given): anonymous mappings' growth minus Python's pools and the allocator's claim; by
    # layer (no owners: exec, attach): anon RSS growth minus the allocator figure's growth minus JVM mappings.
    unexplained_bytes: int | None
    allocator_figure: str | None  # the allocator figure subtracted for unexplained_bytes (its key); None: none
    owners: list[OwnerLine] | None = None  # None: the worker did not attribute by address
    python_pools_delta: int | None = None  # pymalloc's pools in use, change since the baseline
    malloc: MallocClaim | None = None  # None: no allocator figure to claim with
    rounding: Rounding | None = None
    bound_bytes: int | None = None  # max(2 % of |anon RSS growth|, 1 MiB): the most unexplained_bytes should be
    # The workbench's own memory in the other anonymous mappings: its snapshot reader's buffers (by address, from
    # the same read of the mappings), change since the baseline; None: not measured (read in Python, exec).
    workbench_delta: int | None = None


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


@dataclass(frozen=True)
class AddressView:
    """What the ledger by owner needs of one snapshot."""

    attribution: AddressAttribution
    figures: dict[str, int]  # every byte figure by dotted path, plus the allocator's raw figures it claims with
    size_classes: list[SizeClass] | None


def reconcile(deltas: dict[str, int], allocation_manager: str, baseline: str, backend: str | None = None,
              now: AddressView | None = None, base: AddressView | None = None) -> Reconciliation | None:
    """The ledger for one snapshot from its deltas against the baseline, by owner when both snapshots were
    attributed by address (``now``, ``base``); None without a process figure."""
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
    if now is not None and base is not None:
        return by_address(lines, baseline, now.attribution, base.attribution, deltas, backend, now.figures,
                          base.figures, jvm_mapped,
                          rounding(deltas, now.size_classes, base.size_classes, allocation_manager))
    allocator_part = deltas[allocator_figure] if allocator_figure else 0
    return Reconciliation(
        baseline=baseline,
        lines=lines,
        jvm_mapped_bytes=jvm_mapped,
        unexplained_bytes=rss - allocator_part - (jvm_mapped or 0),
        allocator_figure=allocator_figure,
    )


# The other layers' figures beside each owner.
_BESIDE: dict[str, tuple[str, ...]] = {
    "java-heap": ("nmt.categories.Java Heap.committed_bytes",),
    "metaspace": ("nmt.categories.Class.committed_bytes",),
    "code": ("nmt.categories.Code.committed_bytes",),
    "gc": ("nmt.categories.GC.committed_bytes",),
    "thread-stacks": ("nmt.categories.Thread.committed_bytes",),
    "anonymous-mmaps": ("nmt.malloc_total_bytes", "allocator.allocated_bytes", "allocator.active_bytes",
                        "allocator.resident_bytes", "allocator.mapped_bytes"),
}
# Per backend, the allocator figure nearest to the pages it has touched in anonymous mappings outside the JVM.
_CLAIM_FIGURE = {"jemalloc": "allocator.resident_bytes", "tcmalloc": "allocator.resident_bytes",
                 "mimalloc": "allocator.mapped_bytes", "glibc": "allocator.raw.hblkhd"}
# What each backend's claim figure may count that the kernel need not have resident, from its own documentation.
_OVERCOUNTS = {
    "jemalloc": " (its resident may count pages of large size classes never touched, or purged)",
    "tcmalloc": " (its resident may count free page-heap pages)",
    "mimalloc": " (its mapped may count committed pages never touched)",
    "glibc": " (hblkhd counts whole mmapped chunks, touched or not)",
}


def bound(anon_delta: int) -> int:
    """The most |unexplained| may be: max(2 % of the anonymous RSS growth, 1 MiB)."""
    return max(abs(anon_delta) * 2 // 100, MIB)


def malloc_claim(backend: str | None, figures: dict[str, int], base_figures: dict[str, int]) -> MallocClaim | None:
    """The allocator's claim on the anonymous mappings outside the JVM: its figure's change since the baseline,
    never capped by what the kernel has there (a cap would hide a missing owner of the same size); None when the
    allocator has no figure for it.

    The figure is the one nearest to "pages the allocator has touched". For jemalloc that is ``stats.resident``
    (pages of active allocations, unused dirty pages and metadata; jemalloc calls it a maximum, since it counts
    demand-zero pages not yet touched), not ``active`` or ``allocated``, which leave out dirty pages and metadata.
    Measured on JDK 17 against the growth of those mappings less Python's pools: arrow-intvector 'held' +21,045,248
    B, resident +21,667,840, active +15,433,728, allocated +14,526,240; at 'filled' +13,635,584 B against
    +15,200,256, +14,393,344, +13,761,512; netty-vs-unsafe 'closed' +10,727,424 B against +10,809,344, +7,630,848,
    +7,531,648. Summed over those two runs' snapshots, |difference| was 3,502,080 B for resident, 26,091,520 B for
    active and 28,573,784 B for allocated.
    """
    key = _CLAIM_FIGURE.get(backend or "")
    if key is None or key not in figures or key not in base_figures:
        return None
    return MallocClaim(key, figures[key], figures[key] - base_figures[key])


def _previous_class(size: int) -> int:
    """jemalloc's large size class below ``size``: four classes per doubling."""
    return size - (1 << max((size - 1).bit_length() - 3, 0))


def rounding(deltas: dict[str, int], classes: list[SizeClass] | None, base_classes: list[SizeClass] | None,
             allocation_manager: str) -> Rounding | None:
    """The large size class that grew most since the baseline, when the requested bytes that grew (NMT 'Other'
    malloc; Arrow's accounting under the Unsafe manager without NMT) fit it: each new extent's share is above the
    class below and at most this class. None otherwise."""
    if classes is None or base_classes is None:
        return None
    before = {c.size_bytes: c.count for c in base_classes if c.kind == "large"}
    grown = [(c.size_bytes, c.count - before.get(c.size_bytes, 0)) for c in classes if c.kind == "large"]
    grown = [(size, count) for size, count in grown if count > 0]
    if not grown:
        return None
    size, count = max(grown, key=lambda g: g[0] * g[1])
    source = "nmt.categories.Other.malloc_bytes"
    requested = deltas.get(source)
    if requested is None and allocation_manager == "unsafe":
        source, requested = "arrow.allocated_bytes", deltas.get("arrow.allocated_bytes")
    if requested is None or requested <= 0 or not _previous_class(size) * count < requested <= size * count:
        return None
    return Rounding(requested, count, size, size * count - requested, source)


def by_address(lines: list[LedgerLine], baseline: str, attribution: AddressAttribution,
               base_attribution: AddressAttribution, deltas: dict[str, int], backend: str | None,
               figures: dict[str, int], base_figures: dict[str, int], jvm_mapped: int | None,
               rounded: Rounding | None) -> Reconciliation:
    """The ledger by owner: every byte of anonymous RSS growth in exactly one owner; of the anonymous mappings
    outside the JVM, Python's pools and the allocator's claim named; the rest, positive or negative, unexplained."""
    owners = [
        OwnerLine(name, share.resident_bytes, share.resident_bytes - base_attribution.owners[name].resident_bytes,
                  {key: deltas.get(key) for key in _BESIDE.get(name, ())})
        for name, share in attribution.owners.items() if name in base_attribution.owners
    ]
    mmaps = attribution.owners["anonymous-mmaps"].resident_bytes
    mmaps_base = base_attribution.owners["anonymous-mmaps"].resident_bytes
    python, python_base = attribution.python_pools_bytes, base_attribution.python_pools_bytes
    python_delta = python - python_base if python is not None and python_base is not None else None
    claim = malloc_claim(backend, figures, base_figures)
    own, own_base = attribution.workbench_buffers_bytes, base_attribution.workbench_buffers_bytes
    own_delta = own - own_base if own is not None and own_base is not None else None
    unexplained = ((mmaps - mmaps_base) - (python_delta or 0) - (claim.claimed_delta if claim else 0)
                   - (own_delta or 0))
    return Reconciliation(
        baseline=baseline, lines=lines, jvm_mapped_bytes=jvm_mapped, unexplained_bytes=unexplained,
        allocator_figure=claim.figure if claim else None, owners=owners, python_pools_delta=python_delta,
        malloc=claim, rounding=rounded, bound_bytes=bound(deltas.get("process.anon_rss_bytes", 0)),
        workbench_delta=own_delta,
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
    name = figure.rsplit(".", 1)[-1].removesuffix("_bytes") if figure else "(none)"
    if reconciliation.owners is not None:
        return (f"unexplained = growth of the anonymous mappings no owner is found for by address - Python's pools "
                f"- the workbench's snapshot buffers - the allocator's {name} growth, whatever its sign")
    return (
        f"unexplained = anonymous RSS growth - allocator {name} growth - JVM mappings (NMT committed - NMT malloc); "
        "committed-but-untouched JVM memory makes it negative, thread stacks, page tables and libraries' own mmaps "
        "make it positive"
    )


OWNER_LABELS: dict[str, str] = {
    "java-heap": "JVM: Java heap", "class-space": "JVM: class space", "metaspace": "JVM: metaspace",
    "code": "JVM: code heap", "gc": "JVM: GC data", "cds": "JVM: CDS archive", "thread-stacks": "thread stacks",
    "jvm-other": "JVM: other regions", "malloc-arenas": "glibc arenas (brk heap, arena heaps)",
    "file-private": "files' private pages", "anonymous-mmaps": "other anonymous mappings",
}
_BESIDE_NAMES = {
    "nmt.categories.Java Heap.committed_bytes": "NMT committed", "nmt.categories.Class.committed_bytes":
    "NMT Class committed (class space and metaspace)", "nmt.categories.Code.committed_bytes": "NMT committed",
    "nmt.categories.GC.committed_bytes": "NMT committed", "nmt.categories.Thread.committed_bytes": "NMT committed",
    "nmt.malloc_total_bytes": "NMT malloc", "allocator.allocated_bytes": "allocated",
    "allocator.active_bytes": "active", "allocator.resident_bytes": "resident", "allocator.mapped_bytes": "mapped",
}


def _signed(value: int | None) -> str:
    return format_bytes(value, signed=True) if value is not None else "not measured"


def explain_owner(line: OwnerLine, reconciliation: Reconciliation) -> str:
    """What the owner's change is beside the other layers' figures for it, in words from the data."""
    beside = [f"{_BESIDE_NAMES[key]} {_signed(value)}" for key, value in line.beside.items()]
    if line.owner == "java-heap":
        committed = line.beside.get("nmt.categories.Java Heap.committed_bytes")
        change = "committed since start" if committed == 0 else f"committed {_signed(committed)}"
        return f"{_signed(line.delta_bytes)} of pages touched ({change})"
    if line.owner == "anonymous-mmaps":
        return f"{_signed(line.delta_bytes)} in mappings the JVM did not name; allocator and NMT: " + ", ".join(beside)
    return ", ".join(beside)


def named_parts(reconciliation: Reconciliation, backend: str | None) -> list[tuple[str, int | None, str]]:
    """The named parts of the other anonymous mappings' growth, and the unexplained rest: (label, bytes, why)."""
    parts: list[tuple[str, int | None, str]] = [
        ("  of which Python's pymalloc pools", reconciliation.python_pools_delta,
         "pools in use (_PyObject_DebugMallocStats)" if reconciliation.python_pools_delta is not None
         else "not measured"),
    ]
    if reconciliation.workbench_delta is not None:
        parts.append(("  of which the workbench's snapshot buffers", reconciliation.workbench_delta,
                      "its reader's region (libworkbench-probe.so), by address"))
    claim = reconciliation.malloc
    name = backend or "the allocator"
    if claim is not None:
        figure = claim.figure.rsplit(".", 1)[-1].removesuffix("_bytes")
        parts.append((f"  of which {name} holds", claim.claimed_delta, f"{name}'s {figure}, as it counts it"))
    else:
        parts.append((f"  of which {name} holds", None, "no allocator figure to claim with"))
    rest = reconciliation.unexplained_bytes
    why = f"bound ±{format_bytes(reconciliation.bound_bytes)}: " + (
        "within" if rest is not None and reconciliation.bound_bytes is not None
        and abs(rest) <= reconciliation.bound_bytes else "over")
    if claim is not None and rest is not None and rest < 0:
        why += (f"; {name} counts {format_bytes(-rest)} more than the kernel has resident in the anonymous mappings "
                f"outside the JVM{_OVERCOUNTS.get(backend or '', '')}; "
                "not explained by address")
    parts.append(("  unexplained", rest, why))
    return parts



def explain_rounding(rounding: Rounding) -> str:
    """'jemalloc: 412,500,000 B requested in the 448 MiB size class (+35.2 MiB, 8.5 %)'."""
    extents = f"{rounding.extents} extents of " if rounding.extents > 1 else ""
    return (f"{rounding.requested_bytes:,} B requested in {extents}the {format_bytes(rounding.class_bytes)} size "
            f"class ({format_bytes(rounding.rounding_bytes, signed=True)}, "
            f"{100 * rounding.rounding_bytes / (rounding.class_bytes * rounding.extents):.1f} % of the class): "
            "size-class rounding")
