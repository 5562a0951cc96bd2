"""The reconciliation: one ledger per snapshot, from Arrow down to the kernel, on changes since the baseline.

Two views. The chain (``lines``): each line is a layer's growth since the baseline; ``delta_to_next`` is what the
next layer down adds, said in words. The owners (``owners``, when the worker attributed its mappings by address):
the anonymous RSS split by mapping into the JVM's regions, the threads' stacks, the allocator's own mappings, files'
private pages and the other anonymous mappings.

The allocator's mappings are found by address when the allocator says where they are (the workbench's jemalloc,
tcmalloc, mimalloc record the ranges they map; glibc's arenas have a shape of their own): their resident bytes are
then the kernel's, and the allocator's own figures stand beside them (``malloc``: allocated, active, its resident,
dirty pages, size-class rounding), the differences named; glibc's mmapped chunks are found by their headers, when they
add up to its hblkhd (``probes/glibc_chunks.py``). Where the allocator's mappings cannot be found (the distributions'
jemalloc, tcmalloc, mimalloc; glibc's mmapped chunks at a snapshot where they do not add up) its figure nearest the
pages it touched is claimed from the other anonymous mappings instead (``claim``), uncapped. Of the other anonymous
mappings Python's pymalloc
pools are named too, and the rest, whatever its sign, is ``unexplained_bytes``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from workbench.figures import BY_KEY, LEDGER
from workbench.probes.allocator import SizeClass
from workbench.probes.glibc_chunks import GlibcChunks
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
    # "cached-stacks", "malloc-arenas", "file-private", "anonymous-mmaps"
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
class SizeClassTotals:
    """The allocator's size classes at one snapshot, summed, and their change since the baseline."""

    small_bytes: int  # live small regions (bins) at their class size
    small_delta: int
    large_bytes: int  # live large extents at their class size
    large_delta: int
    large_extents: int
    # Free regions inside the small bins' slabs: active pages no live allocation uses (fragmentation); None where
    # the allocator does not say how many regions its slabs hold (mimalloc).
    small_free_bytes: int | None
    small_free_delta: int | None


@dataclass(frozen=True)
class MallocLayer:
    """The allocator beside what the kernel has resident in its own mappings (owner ``malloc-arenas``): its
    figures' changes since the baseline (None: the allocator has no such figure), and what it keeps."""

    backend: str
    mappings: str  # how its mappings were found: "recorded" (ranges it keeps), "glibc-heaps"
    kernel_delta: int  # smaps' (and pagemap's) resident bytes in its mappings: the change since the baseline
    allocated_delta: int | None  # live allocations at their size class
    active_delta: int | None  # pages holding live allocations (jemalloc), made available to blocks (mimalloc)
    resident_delta: int | None  # the allocator's own count of its resident pages
    mapped_delta: int | None
    metadata_delta: int | None
    dirty_bytes: int | None  # freed pages it keeps, not yet purged, at this snapshot (jemalloc's pdirty)
    dirty_delta: int | None
    dirty_decay_ms: int | None  # after how long jemalloc purges them (opt.dirty_decay_ms)
    tcache_bytes: int | None  # freed small regions the threads' caches hold, at this snapshot
    sizes: SizeClassTotals | None
    # glibc: the search for its mmapped chunks by their headers at this snapshot and at the baseline (None: not
    # glibc); their pages are in kernel_delta where both were "found".
    chunks: GlibcChunks | None = None
    base_chunks: GlibcChunks | None = None
    # tcmalloc: the free pages its page heap keeps mapped (pageheap_free_bytes: never handed out, or freed and not yet
    # released; it counts them as physical), at this snapshot and their change; the free pages it released to the
    # system (pageheap_unmapped_bytes, address space kept); the freed objects its central and transfer caches hold.
    # None: not tcmalloc. (Its threads' caches are ``tcache_bytes``.)
    page_heap_free_bytes: int | None = None
    page_heap_free_delta: int | None = None
    page_heap_unmapped_bytes: int | None = None
    central_cache_bytes: int | None = None


@dataclass(frozen=True)
class Rounding:
    """Size-class rounding of the large allocations made since the baseline: requested (NMT 'Other' malloc, or
    Arrow's accounting) against the jemalloc size classes the new extents are in, summed over those classes."""

    requested_bytes: int
    extents: int  # new extents in those classes since the baseline
    class_bytes: int  # the size class holding most of the new extents' bytes
    rounding_bytes: int  # the new extents' class bytes - requested_bytes
    requested_from: str  # the figure the requested bytes are ("nmt.categories.Other.malloc_bytes", ...)
    classes_bytes: int = 0  # the new extents' bytes, all classes (extents * class_bytes when one class grew)


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
    malloc_layer: MallocLayer | None = None  # None: the allocator's mappings were not found by address
    sizes: SizeClassTotals | None = None  # None: the allocator gives no size classes
    # The workbench's own memory in the other anonymous mappings: its snapshot reader's buffers (by address, from
    # the same read of the mappings), change since the baseline; None: not measured (read in Python, exec).
    workbench_delta: int | None = None
    # glibc's mmapped chunks: "found" by their headers at this snapshot and the baseline (exactly hblkhd, then in
    # malloc-arenas by address), "claimed" (not found at one of them: hblkhd's change claimed); None: not glibc.
    glibc_chunks: Literal["found", "claimed"] | None = None


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
                          rounding(deltas, now.size_classes, base.size_classes, allocation_manager),
                          _size_totals(now.size_classes, base.size_classes))
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
    "malloc-arenas": ("nmt.malloc_total_bytes", "allocator.allocated_bytes", "allocator.active_bytes",
                      "allocator.resident_bytes", "allocator.mapped_bytes"),
    "anonymous-mmaps": ("nmt.malloc_total_bytes", "allocator.allocated_bytes", "allocator.active_bytes",
                        "allocator.resident_bytes", "allocator.mapped_bytes"),
}
# Per backend, the allocator figure nearest to the pages it has touched in anonymous mappings outside the JVM,
# claimed when its mappings are not found by address (glibc: its mmapped chunks, outside the arenas found).
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
    """The allocator's claim on the anonymous mappings outside the JVM, for an allocator whose own mappings are not
    found by address: its figure's change since the baseline, never capped by what the kernel has there (a cap
    would hide a missing owner of the same size); None when the allocator has no figure for it.

    The figure is the one nearest to "pages the allocator has touched". For jemalloc that is ``stats.resident``
    (pages of active allocations, unused dirty pages and metadata), not ``active`` or ``allocated``, which leave out
    dirty pages and metadata; but jemalloc's resident counts pages it never touched too (measured on intvector-large,
    JDK 17: +2,829,357,056 B against +2,478,743,552 B the kernel has, the tails of its 896 MiB class), which is why
    the jemalloc the workbench builds records its mappings and is measured by address instead.
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
    """The large size classes that grew since the baseline, summed, when the requested bytes that grew (NMT 'Other'
    malloc; Arrow's accounting under the Unsafe manager without NMT) fit them: above what the classes below would
    hold and at most what they hold. None otherwise."""
    if classes is None or base_classes is None:
        return None
    before = {c.size_bytes: c.count for c in base_classes if c.kind == "large"}
    grown = [(c.size_bytes, c.count - before.get(c.size_bytes, 0)) for c in classes if c.kind == "large"]
    grown = [(size, count) for size, count in grown if count > 0]
    if not grown:
        return None
    source = "nmt.categories.Other.malloc_bytes"
    requested = deltas.get(source)
    if requested is None and allocation_manager == "unsafe":
        source, requested = "arrow.allocated_bytes", deltas.get("arrow.allocated_bytes")
    if requested is None or requested <= 0:
        return None
    # The classes in order of their bytes; the smallest set from the top that the request fits is taken.
    grown.sort(key=lambda g: g[0] * g[1], reverse=True)
    for taken in range(1, len(grown) + 1):
        top = grown[:taken]
        held = sum(size * count for size, count in top)
        below = sum(_previous_class(size) * count for size, count in top)
        if below < requested <= held:
            size, count = top[0]
            return Rounding(requested, sum(c for _, c in top), size, held - requested, source, held)
    return None


def _size_totals(classes: list[SizeClass] | None, base: list[SizeClass] | None) -> SizeClassTotals | None:
    if classes is None or base is None:
        return None

    def totals(of: list[SizeClass]) -> tuple[int, int, int, int | None]:
        small = [c for c in of if c.kind == "small"]
        frees = [c.free_bytes for c in small]
        free = None if not small or any(f is None for f in frees) else sum(f or 0 for f in frees)
        large = [c for c in of if c.kind == "large"]
        return sum(c.bytes for c in small), sum(c.bytes for c in large), sum(c.count for c in large), free

    small, large, extents, free = totals(classes)
    small_base, large_base, _, free_base = totals(base)
    return SizeClassTotals(small, small - small_base, large, large - large_base, extents, free,
                           free - free_base if free is not None and free_base is not None else None)


def _malloc_layer(backend: str | None, attribution: AddressAttribution, kernel_delta: int, deltas: dict[str, int],
                  figures: dict[str, int], sizes: SizeClassTotals | None,
                  base_chunks: GlibcChunks | None = None) -> MallocLayer | None:
    if attribution.allocator_mappings is None or backend is None:
        return None
    central = [figures.get(f"allocator.raw.tcmalloc.{name}_cache_free_bytes") for name in ("central", "transfer")]
    return MallocLayer(
        backend=backend, mappings=attribution.allocator_mappings, kernel_delta=kernel_delta,
        allocated_delta=deltas.get("allocator.allocated_bytes"), active_delta=deltas.get("allocator.active_bytes"),
        resident_delta=deltas.get("allocator.resident_bytes"), mapped_delta=deltas.get("allocator.mapped_bytes"),
        metadata_delta=deltas.get("allocator.metadata_bytes"),
        dirty_bytes=figures.get("allocator.raw.dirty_bytes"), dirty_delta=deltas.get("allocator.raw.dirty_bytes"),
        dirty_decay_ms=figures.get("allocator.raw.dirty_decay_ms"),
        tcache_bytes=figures.get("allocator.raw.tcache_bytes", figures.get(
            "allocator.raw.tcmalloc.thread_cache_free_bytes")),
        sizes=sizes, chunks=attribution.glibc_chunks, base_chunks=base_chunks,
        page_heap_free_bytes=figures.get("allocator.raw.tcmalloc.pageheap_free_bytes"),
        page_heap_free_delta=deltas.get("allocator.raw.tcmalloc.pageheap_free_bytes"),
        page_heap_unmapped_bytes=figures.get("allocator.raw.tcmalloc.pageheap_unmapped_bytes"),
        central_cache_bytes=sum(c for c in central if c is not None) if all(c is not None for c in central) else None,
    )


def by_address(lines: list[LedgerLine], baseline: str, attribution: AddressAttribution,
               base_attribution: AddressAttribution, deltas: dict[str, int], backend: str | None,
               figures: dict[str, int], base_figures: dict[str, int], jvm_mapped: int | None,
               rounded: Rounding | None, sizes: SizeClassTotals | None = None) -> Reconciliation:
    """The ledger by owner: every byte of anonymous RSS growth in exactly one owner; of the anonymous mappings
    outside the JVM, Python's pools and (where the allocator's mappings were not found by address) the allocator's
    claim named; the rest, positive or negative, unexplained."""
    found = attribution.allocator_mappings if attribution.allocator_mappings == base_attribution.allocator_mappings \
        else None

    def beside(name: str) -> dict[str, int | None]:
        if name == "malloc-arenas" and found is None or name == "anonymous-mmaps" and found == "recorded":
            return {}  # the allocator's figures stand beside the mappings that hold its memory
        return {key: deltas.get(key) for key in _BESIDE.get(name, ())}

    owners = [
        OwnerLine(name, share.resident_bytes, share.resident_bytes - base_attribution.owners[name].resident_bytes,
                  beside(name))
        for name, share in attribution.owners.items() if name in base_attribution.owners
    ]
    python, python_base = attribution.python_pools_bytes, base_attribution.python_pools_bytes
    python_delta = python - python_base if python is not None and python_base is not None else None
    chunks = chunks_found(attribution, base_attribution)
    # Mappings found by address leave nothing of the allocator among the other anonymous mappings, except glibc's
    # mmapped chunks where they were not found by their headers at both snapshots: hblkhd is claimed then, against
    # the other anonymous mappings as they would be without the chunks found at either snapshot.
    claim = None if found == "recorded" or chunks == "found" else malloc_claim(backend, figures, base_figures)
    mmaps = _other_mappings(attribution, claim is not None)
    mmaps_base = _other_mappings(base_attribution, claim is not None)
    own, own_base = attribution.workbench_buffers_bytes, base_attribution.workbench_buffers_bytes
    own_delta = own - own_base if own is not None and own_base is not None else None
    unexplained = ((mmaps - mmaps_base) - (python_delta or 0) - (claim.claimed_delta if claim else 0)
                   - (own_delta or 0))
    arenas = next(line.delta_bytes for line in owners if line.owner == "malloc-arenas")
    layer = _malloc_layer(backend, dataclasses.replace(attribution, allocator_mappings=found), arenas, deltas,
                          figures, sizes, base_attribution.glibc_chunks)
    return Reconciliation(
        baseline=baseline, lines=lines, jvm_mapped_bytes=jvm_mapped, unexplained_bytes=unexplained,
        allocator_figure=claim.figure if claim else None, owners=owners, python_pools_delta=python_delta,
        malloc=claim, rounding=rounded, bound_bytes=bound(deltas.get("process.anon_rss_bytes", 0)),
        malloc_layer=layer, sizes=sizes, workbench_delta=own_delta, glibc_chunks=chunks,
    )


def chunks_found(attribution: AddressAttribution, base: AddressAttribution) -> Literal["found", "claimed"] | None:
    """How glibc's mmapped chunks are in the ledger: "found" when they were found by their headers (exactly hblkhd)
    at this snapshot and at the baseline, "claimed" (hblkhd's change) otherwise; None: not glibc."""
    if attribution.glibc_chunks is None and base.glibc_chunks is None:
        return None
    both = (attribution.glibc_chunks, base.glibc_chunks)
    return "found" if all(c is not None and c.how == "found" for c in both) else "claimed"


def _other_mappings(attribution: AddressAttribution, claimed: bool) -> int:
    """The other anonymous mappings' resident bytes; where hblkhd is claimed, with glibc's chunks put back in
    (those found by their headers are in malloc-arenas)."""
    chunks = attribution.glibc_chunks
    back = chunks.resident_bytes if claimed and chunks is not None and chunks.resident_bytes is not None else 0
    return attribution.owners["anonymous-mmaps"].resident_bytes + back


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
    """How the unexplained remainder is computed."""
    figure = reconciliation.allocator_figure
    name = figure.rsplit(".", 1)[-1].removesuffix("_bytes") if figure else "(none)"
    if reconciliation.owners is not None:
        if reconciliation.malloc_layer is not None and reconciliation.malloc is None:
            return ("unexplained = growth of the anonymous mappings no owner is found for by address - Python's "
                    "pools, whatever its sign (the allocator's own mappings are an owner, found by address)")
        return (f"unexplained = growth of the anonymous mappings no owner is found for by address - Python's pools "
                f"- the workbench's snapshot buffers - the allocator's {name} growth, whatever its sign")
    return (
        f"unexplained = anonymous RSS growth - allocator {name} growth - JVM mappings (NMT committed - NMT malloc), "
        "whatever its sign; without the ledger by address (exec, attach) its parts are not measured"
    )


OWNER_LABELS: dict[str, str] = {
    "java-heap": "JVM: Java heap", "class-space": "JVM: class space", "metaspace": "JVM: metaspace",
    "code": "JVM: code heap", "gc": "JVM: GC data", "cds": "JVM: CDS archive", "thread-stacks": "thread stacks",
    "jvm-other": "JVM: other regions", "cached-stacks": "ended threads' stacks (glibc's cache)",
    "malloc-arenas": "the allocator's own mappings",
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


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def malloc_sentences(layer: MallocLayer, rounded: Rounding | None) -> list[str]:
    """The allocator's figures beside what the kernel has in its mappings, and what it keeps, in words from the
    data: one sentence each, most telling first."""
    name = layer.backend
    found = "the ranges it recorded" if layer.mappings == "recorded" else "[heap] and its arena heaps"
    chunks = layer.chunks
    if chunks_how(layer) == "found" and chunks is not None:
        found = (f"[heap], its arena heaps and its {chunks.found_chunks} mmapped chunks of {chunks.found_bytes:,} B, "
                 "found by their headers: exactly hblkhd")
    said = [f"the kernel has {_signed(layer.kernel_delta)} resident in {name}'s own mappings ({found})"]
    if chunks_how(layer) == "found" and chunks is not None and chunks.resident_bytes is not None:
        said.append(f"of its mmapped chunks' {format_bytes(chunks.found_bytes)} the kernel has "
                    f"{format_bytes(chunks.resident_bytes)} resident ({_percent(chunks.resident_bytes, chunks.found_bytes)})")
    figures = [(label, value) for label, value in (("allocated", layer.allocated_delta), ("active", layer.active_delta),
                                                   ("resident", layer.resident_delta), ("mapped", layer.mapped_delta),
                                                   ("metadata", layer.metadata_delta)) if value is not None]
    if figures:
        said.append(f"{name} says " + ", ".join(f"{label} {_signed(value)}" for label, value in figures))
    own = layer.resident_delta if layer.resident_delta is not None else layer.mapped_delta
    own_name = "resident" if layer.resident_delta is not None else "mapped (committed)"
    if own is not None and layer.mappings == "recorded":
        difference = own - layer.kernel_delta
        if difference > 0:
            said.append(f"{name}'s {own_name} counts {format_bytes(difference)} more than the kernel has in its "
                        "mappings: pages it holds that were never touched")
        elif difference < 0:
            said.append(f"the kernel has {format_bytes(-difference)} more in {name}'s mappings than its "
                        f"{own_name} counts")
    if rounded is not None:
        said.append(f"{name}: {explain_rounding(rounded)}")
    if layer.dirty_bytes is not None:
        decay = f", purged after dirty_decay_ms={layer.dirty_decay_ms}" if layer.dirty_decay_ms is not None else ""
        said.append(f"{name} keeps {format_bytes(layer.dirty_bytes)} of freed pages (dirty{decay}), "
                    f"{_signed(layer.dirty_delta)} since the baseline")
    sizes = layer.sizes
    if sizes is not None and sizes.small_free_bytes is not None:
        held = sizes.small_bytes + sizes.small_free_bytes
        said.append(f"{format_bytes(sizes.small_free_bytes)} free inside its small slabs "
                    f"({_percent(sizes.small_bytes, held)} of their regions in use), {_signed(sizes.small_free_delta)}"
                    " since the baseline")
    if layer.page_heap_free_bytes is not None:
        unmapped = layer.page_heap_unmapped_bytes
        released = (f", and {format_bytes(unmapped)} of free pages released to the system "
                    "(pageheap_unmapped_bytes, address space kept)" if unmapped is not None else "")
        said.append(f"{name}'s page heap keeps {format_bytes(layer.page_heap_free_bytes)} of free pages mapped "
                    f"(pageheap_free_bytes: never handed out, or freed and not yet released, which {name} counts as "
                    f"resident), {_signed(layer.page_heap_free_delta)} since the baseline{released}")
    if layer.tcache_bytes:
        said.append(f"the threads' caches hold {format_bytes(layer.tcache_bytes)} of freed small regions")
    if layer.central_cache_bytes:
        said.append(f"its central and transfer caches hold {format_bytes(layer.central_cache_bytes)} of freed small "
                    "objects")
    return said


def chunks_how(layer: MallocLayer) -> Literal["found", "claimed"] | None:
    """How glibc's mmapped chunks are in the ledger of this layer (``chunks_found``); None: not glibc."""
    if layer.chunks is None and layer.base_chunks is None:
        return None
    both = (layer.chunks, layer.base_chunks)
    return "found" if all(c is not None and c.how == "found" for c in both) else "claimed"


def _why_claimed(layer: MallocLayer | None) -> str:
    """Why glibc's chunks were not found by address, from the searches: "" when there is nothing to say."""
    if layer is None:
        return ""
    for chunks, when in ((layer.chunks, "here"), (layer.base_chunks, "at the baseline")):
        if chunks is not None and chunks.how == "claimed":
            return (f"; not found by address {when}: the chunks found by their headers ({chunks.found_chunks}, "
                    f"{chunks.found_bytes:,} B) are not glibc's own count (hblks {chunks.hblks}, hblkhd "
                    f"{chunks.hblkhd:,} B)")
    return ""


def explain_owner(line: OwnerLine, reconciliation: Reconciliation) -> str:
    """What the owner's change is beside the other layers' figures for it, in words from the data."""
    beside = [f"{_BESIDE_NAMES[key]} {_signed(value)}" for key, value in line.beside.items()]
    if line.owner == "java-heap":
        committed = line.beside.get("nmt.categories.Java Heap.committed_bytes")
        change = "committed since start" if committed == 0 else f"committed {_signed(committed)}"
        return f"{_signed(line.delta_bytes)} of pages touched ({change})"
    if line.owner == "malloc-arenas":
        layer = reconciliation.malloc_layer
        if layer is None:
            return ""
        return "; ".join(malloc_sentences(layer, reconciliation.rounding))
    if line.owner == "cached-stacks":
        return f"{_signed(line.delta_bytes)} in ended threads' stacks glibc keeps mapped for reuse (its stack cache)"
    if line.owner == "anonymous-mmaps":
        if not beside:
            return f"{_signed(line.delta_bytes)} in mappings no owner is found for"
        return f"{_signed(line.delta_bytes)} in mappings the JVM did not name; allocator and NMT: " + ", ".join(beside)
    return ", ".join(beside)


def named_parts(reconciliation: Reconciliation, backend: str | None) -> list[tuple[str, int | None, str]]:
    """The named parts of the other anonymous mappings' growth, and the unexplained rest: (label, bytes, why)."""
    parts: list[tuple[str, int | None, str]] = [
        ("  of which Python's pymalloc pools", reconciliation.python_pools_delta,
         "pools in use (_PyObject_DebugMallocStats)" if reconciliation.python_pools_delta is not None
         else "not measured (pymalloc off: Python's memory goes through the allocator)"),
    ]
    if reconciliation.workbench_delta is not None:
        parts.append(("  of which the workbench's snapshot buffers", reconciliation.workbench_delta,
                      "its reader's region (libworkbench-probe.so), by address"))
    claim = reconciliation.malloc
    name = backend or "the allocator"
    layer = reconciliation.malloc_layer
    if claim is not None:
        figure = claim.figure.rsplit(".", 1)[-1].removesuffix("_bytes")
        if claim.figure == "allocator.raw.hblkhd":
            parts.append((f"  of which {name} holds", claim.claimed_delta,
                          f"{name}'s mmapped chunks, as it counts them (hblkhd){_why_claimed(layer)}"))
        else:
            parts.append((f"  of which {name} holds", claim.claimed_delta, f"{name}'s {figure}, as it counts it"))
    elif layer is not None and layer.mappings == "recorded":
        parts.append((f"  of which {name} holds", 0, f"none: {name}'s mappings are an owner of their own, found by "
                                                     "address"))
    elif layer is not None and reconciliation.glibc_chunks == "found":
        parts.append((f"  of which {name} holds", 0, f"none: {name}'s heaps by their shape and its mmapped chunks by "
                                                     "their headers (exactly hblkhd) are an owner of their own"))
    else:
        parts.append((f"  of which {name} holds", None, "no allocator figure to claim with"))
    rest = reconciliation.unexplained_bytes
    within = rest is not None and reconciliation.bound_bytes is not None and abs(rest) <= reconciliation.bound_bytes
    why = f"bound ±{format_bytes(reconciliation.bound_bytes)}: " + ("within" if within else "over")
    if claim is not None and rest is not None and rest < 0:
        why += (f"; {name} counts {format_bytes(-rest)} more than the kernel has resident in the anonymous mappings "
                f"outside the JVM{_OVERCOUNTS.get(backend or '', '')}; "
                "not explained by address")
    elif rest is not None and rest > 0 and not within:
        why += f"; {format_bytes(rest)} of growth in anonymous mappings no owner is found for"
    parts.append(("  unexplained", rest, why))
    return parts


def explain_rounding(rounding: Rounding) -> str:
    """'412,500,000 B requested in the 448 MiB size class (+35.2 MiB, 7.5 % of the class): size-class rounding'."""
    held = rounding.classes_bytes or rounding.class_bytes * rounding.extents
    if held == rounding.class_bytes * rounding.extents:
        extents = f"{rounding.extents} extents of " if rounding.extents > 1 else ""
        where = f"{extents}the {format_bytes(rounding.class_bytes)} size class"
    else:
        where = f"{rounding.extents} extents of large size classes ({format_bytes(held)}, most in " \
                f"{format_bytes(rounding.class_bytes)})"
    return (f"{rounding.requested_bytes:,} B requested in {where} "
            f"({format_bytes(rounding.rounding_bytes, signed=True)}, {_percent(rounding.rounding_bytes, held)} of the "
            "class): size-class rounding")
