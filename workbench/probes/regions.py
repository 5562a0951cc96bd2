"""The JVM's own regions of the address space, and the threads' stacks: which mapping belongs to whom.

JDK 21+ says it itself (``System.map``: every mapping with its NMT category, when NMT is on). Elsewhere (JDK 17,
or NMT off) the regions are found from what the JVM prints about them: the Java heap's and the class space's
ranges from its start-up log (``-Xlog:gc+heap+coops=debug,gc+metaspace=info``, which the workbench adds), the code
heaps' bounds from ``Compiler.codecache``, the metaspace nodes from ``VM.metaspace vslist``. A thread's stack is
the mapping its stack pointer is in (``/proc/self/task/*/syscall``, for threads waiting in a system call).
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from workbench.probes.glibc_chunks import Candidates, FindChunks, GlibcChunks
from workbench.protocol import layout
from workbench.probes.pages import anonymous_bytes
from workbench.probes.process import Mapping, parse_smaps
from workbench.probes.thread_stacks import CachedStacks, ended_thread_stack, has_stack_shape

# The owners of resident anonymous memory the ledger names, JVM regions first.
JvmOwner = Literal["java-heap", "class-space", "metaspace", "code", "gc", "cds", "thread-stacks", "jvm-other"]
RegionSource = Literal["system-map", "start-up-log", "codecache", "metaspace", "stack-pointer"]

# The JVM's log of its heap and class space ranges, in the run directory, and the option that writes it.
REGIONS_LOG, REGIONS_LOG_OPTION = layout.REGIONS_LOG, layout.REGIONS_LOG_OPTION


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    owner: JvmOwner
    source: RegionSource


# System.map's "vm info" column (the part before a thread's "-TID-name"), per owner.
_SYSTEM_MAP_OWNERS: dict[str, JvmOwner] = {
    "JAVAHEAP": "java-heap", "CLASS": "class-space", "META": "metaspace", "CODE": "code", "GC": "gc",
    "CARDTBL": "gc", "CDS": "cds", "STACK": "thread-stacks", "INTERN": "jvm-other", "POLL": "jvm-other",
    "JDK": "jvm-other", "TEST": "jvm-other",
}


def parse_system_map(text: str) -> list[Region]:
    """The mappings ``System.map`` (JDK 21+) gives an NMT category; [] when it gives none (NMT off)."""
    regions: list[Region] = []
    for line in text.splitlines():
        if not line.startswith("0x"):
            continue
        fields = line.split()
        # from-to, vsize, prot, rss, hugetlb, pgsz, notes, info, file
        if len(fields) < 8 or "-" not in fields[0]:
            continue
        owner = _SYSTEM_MAP_OWNERS.get(fields[7].split("-", 1)[0])
        if owner is None:
            continue
        low, high = fields[0].split("-", 1)
        regions.append(Region(int(low, 16), int(high, 16), owner, "system-map"))
    return regions


_HEAP = re.compile(r"Heap address: (0x[0-9a-f]+), size: (\d+) MB")
_CLASS_SPACE = re.compile(r"Compressed class space mapped at: (0x[0-9a-f]+)-(0x[0-9a-f]+)")
_CDS = re.compile(r"CDS archive\(s\) mapped at: \[(0x[0-9a-f]+)-(0x[0-9a-f]+)-(0x[0-9a-f]+)\)")
# `-Xlog:pagesize`: "Mark Bitmap: req_size=96448K ... base=0x00007f19e1a09000 size=96448K page_size=4K" (JDK 25; JDK
# 17 has "Prev Bitmap" and "Next Bitmap", and "page_size=... alignment=... size=..." in another order). G1's full GC
# touches the bitmaps of the whole committed heap (1/64 of it): 3.3 MB on intvector-open-vectors' 'after-gc'.
_GC_TABLE = re.compile(r"\] (?:Block Offset Table|Card Table|Card Counts Table|Prev Bitmap|Next Bitmap|Mark Bitmap):"
                       r".*? base=(0x[0-9a-f]+)\b.*?(?<![_a-z])size=(\d+)([BKMG]?)\b")
_UNIT = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_start_up_log(text: str) -> list[Region]:
    """The Java heap's reserved range, the class space, the CDS archive and the GC's tables (card table, block
    offset table, mark bitmaps) from the JVM's start-up log."""
    regions: list[Region] = []
    if m := _HEAP.search(text):
        start = int(m.group(1), 16)
        regions.append(Region(start, start + int(m.group(2)) * 1024 * 1024, "java-heap", "start-up-log"))
    if m := _CLASS_SPACE.search(text):
        regions.append(Region(int(m.group(1), 16), int(m.group(2), 16), "class-space", "start-up-log"))
    if m := _CDS.search(text):
        regions.append(Region(int(m.group(1), 16), int(m.group(3), 16), "cds", "start-up-log"))
    for m in _GC_TABLE.finditer(text):
        start = int(m.group(1), 16)
        regions.append(Region(start, start + int(m.group(2)) * _UNIT[m.group(3)], "gc", "start-up-log"))
    return regions


_CODE_HEAP_BOUNDS = re.compile(r"bounds \[(0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+)\]")


def parse_codecache(text: str) -> list[Region]:
    """Each code heap's reserved range from ``Compiler.codecache`` (``bounds [low, high, end]``)."""
    return [Region(int(m.group(1), 16), int(m.group(3), 16), "code", "codecache")
            for m in _CODE_HEAP_BOUNDS.finditer(text)]


_METASPACE_NODE = re.compile(r"- node #\d+: base (0x[0-9a-f]+): reserved=([\d.]+) KB")


def parse_metaspace_nodes(text: str) -> list[Region]:
    """The non-class metaspace nodes from ``VM.metaspace vslist`` (the class space's node is the class space)."""
    non_class = text.split("vsl class-space", 1)[0]
    return [Region(int(m.group(1), 16), int(m.group(1), 16) + int(float(m.group(2)) * 1024), "metaspace",
                   "metaspace") for m in _METASPACE_NODE.finditer(non_class)]


def stack_pointers(pid: int | str = "self") -> list[int]:
    """The stack pointer of every thread of the process that waits in a system call (running threads have none)."""
    pointers: list[int] = []
    task = f"/proc/{pid}/task"
    for tid in os.listdir(task):
        try:
            with open(f"{task}/{tid}/syscall", encoding="ascii") as f:
                fields = f.read().split()
        except OSError:  # the thread ended meanwhile
            continue
        if len(fields) >= 9:  # "nr arg1..arg6 sp pc"; "running" or "-1 sp pc" otherwise
            pointers.append(int(fields[7], 16))
        elif len(fields) == 3 and fields[0] == "-1":
            pointers.append(int(fields[1], 16))
    return sorted(pointers)


def stack_regions(pointers: list[int]) -> list[Region]:
    """A one-byte region at each stack pointer: the mapping that holds it is that thread's stack."""
    return [Region(sp, sp + 1, "thread-stacks", "stack-pointer") for sp in pointers]


# Where resident anonymous memory outside the JVM's regions lives, as far as the kernel's view alone tells.
# cached-stacks: ended threads' stacks glibc keeps mapped for reuse (probes/thread_stacks.py), no longer the JVM's.
OtherOwner = Literal["cached-stacks", "malloc-arenas", "file-private", "anonymous-mmaps"]
Owner = JvmOwner | OtherOwner
OWNERS: tuple[Owner, ...] = ("java-heap", "class-space", "metaspace", "code", "gc", "cds", "thread-stacks",
                             "jvm-other", "cached-stacks", "malloc-arenas", "file-private", "anonymous-mmaps")
GLIBC_HEAP_MAX = 64 * 1024 * 1024  # glibc's HEAP_MAX_SIZE on 64-bit: each non-main arena heap is aligned to it


@dataclass(frozen=True)
class OwnerResident:
    """What the kernel has resident, by mapping, for one owner: smaps' ``Anonymous`` summed over its mappings."""

    resident_bytes: int
    size_bytes: int  # the virtual size of those mappings
    mappings: int


@dataclass(frozen=True)
class UnownedMapping:
    """One of the largest anonymous mappings no owner was found for: where the unexplained rest can be looked for."""

    start: int
    size_bytes: int
    anon_bytes: int


UNOWNED_SHOWN = 8  # how many of the largest unowned anonymous mappings each snapshot keeps


@dataclass(frozen=True)
class AddressAttribution:
    """The process's anonymous RSS split by mapping into owners; the owners' bytes sum to it exactly."""

    owners: dict[str, OwnerResident]  # every owner of OWNERS, in that order
    sources: list[str]  # how the JVM's regions were found (RegionSource values), in the order used
    stacks_found: int  # threads whose stack was located by their stack pointer
    threads: int  # the process's threads
    shared_mappings: int  # mappings that straddle owners: each goes whole to the owner of its largest overlap
    # pymalloc's pools in use (inside anonymous-mmaps: its arenas are mmaps of their own); None: not measured.
    python_pools_bytes: int | None = None
    # How the allocator's own mappings (owner malloc-arenas) were found: "recorded" (the ranges a workbench-built
    # allocator keeps of what it maps), "glibc-heaps" ([heap] and glibc's aligned arena heaps), None: not found.
    allocator_mappings: Literal["recorded", "glibc-heaps"] | None = None
    # Mappings the allocator's recorded ranges cover only part of (the kernel merged them with a neighbour): its
    # share of each was counted page by page (/proc/self/pagemap).
    split_mappings: int = 0
    unowned: list[UnownedMapping] | None = None  # the largest mappings of anonymous-mmaps, most anonymous bytes first
    # The workbench's snapshot reader's own buffers (libworkbench-probe.so's region, inside anonymous-mmaps): their
    # Anonymous bytes by address, from the same read of the mappings; None: not measured (read in Python).
    workbench_buffers_bytes: int | None = None
    # glibc's mmapped chunks (outside its heaps): "found" by their headers, exactly hblkhd, and then in
    # malloc-arenas; or "claimed" (hblkhd's change is claimed in the ledger); None: not glibc, or not searched.
    glibc_chunks: GlibcChunks | None = None
    # The ended threads' stacks in glibc's stack cache (owner cached-stacks) and how they were found; None: not
    # looked for.
    cached_stacks: CachedStacks | None = None


def _glibc_arena_heaps(mappings: list[Mapping]) -> set[int]:
    """Starts of the mappings that are glibc arena heaps: a read-write part at a 64 MiB boundary, followed by an
    inaccessible rest up to the next boundary at least (the kernel merges it with an inaccessible neighbour, such as
    the guard page of a thread's stack mapped right after it), or the whole 64 MiB read-write; and the starts of those
    inaccessible rests: the heap grows into its rest (mprotect), so a page the rest has is one the heap grew into
    between the read of the mappings and the count of their pages (measured on JDK 17: 475,136 B at 'filled')."""
    starts: set[int] = set()
    for index, mapping in enumerate(mappings):
        if mapping.start % GLIBC_HEAP_MAX or mapping.name or not mapping.perms.startswith("rw"):
            continue
        if mapping.end - mapping.start == GLIBC_HEAP_MAX:
            starts.add(mapping.start)
            continue
        following = mappings[index + 1] if index + 1 < len(mappings) else None
        if following is not None and following.start == mapping.end and following.perms.startswith("---") \
                and following.end >= mapping.start + GLIBC_HEAP_MAX:
            starts.update((mapping.start, following.start))
    return starts


def glibc_merged_heaps(mappings: list[Mapping]) -> tuple[list[tuple[int, int]], set[int]]:
    """glibc arena heaps whose read-write part the kernel merged with the mapping before it (measured under
    churn-arenas: a 14.6 MiB neighbour before a heap's 2.6 MiB): a read-write anonymous mapping across a 64 MiB
    boundary, followed by an inaccessible rest up to the next boundary at least. The heaps' read-write parts (from
    the boundary on), and the starts of their rests."""
    heaps: list[tuple[int, int]] = []
    rests: set[int] = set()
    for index, mapping in enumerate(mappings[:-1]):
        if mapping.name or not mapping.perms.startswith("rw") or mapping.start % GLIBC_HEAP_MAX == 0:
            continue
        boundary = (mapping.start // GLIBC_HEAP_MAX + 1) * GLIBC_HEAP_MAX
        following = mappings[index + 1]
        if boundary < mapping.end and following.start == mapping.end and following.perms.startswith("---") \
                and following.end >= boundary + GLIBC_HEAP_MAX:
            heaps.append((boundary, mapping.end))
            rests.add(following.start)
    return heaps, rests


def _covered(mapping: Mapping, ranges: list[tuple[int, int]], starts: list[int]) -> list[tuple[int, int]]:
    """The parts of ``mapping`` inside ``ranges`` (sorted, not overlapping)."""
    parts: list[tuple[int, int]] = []
    index = max(bisect.bisect_right(starts, mapping.start) - 1, 0)
    while index < len(ranges) and ranges[index][0] < mapping.end:
        low, high = max(ranges[index][0], mapping.start), min(ranges[index][1], mapping.end)
        if low < high:
            parts.append((low, high))
        index += 1
    return parts


def _outside(low: int, high: int, ordered: list[Region], starts: list[int]) -> list[tuple[int, int]]:
    """The parts of [low, high) outside the JVM's regions (``ordered`` by start; regions may overlap)."""
    parts: list[tuple[int, int]] = []
    at = low
    index = max(bisect.bisect_right(starts, low) - 1, 0)
    while index < len(ordered) and ordered[index].start < high:
        region = ordered[index]
        if region.end > at:
            if region.start > at:
                parts.append((at, region.start))
            at = max(at, region.end)
        index += 1
    if at < high:
        parts.append((at, high))
    return parts


def _mappings_now() -> list[Mapping]:
    """This process's mappings as ``/proc/self/maps`` lists them now, each taken as possibly resident (maps has no
    page counts: the chunk search asks pagemap page by page)."""
    with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as maps:
        return [replace(mapping, anon_bytes=mapping.size_bytes) for mapping in parse_smaps(maps.read())]


def _named_metadata(mapping: Mapping, named: list[Region], starts: list[int]) -> bool:
    """Whether System.map names any part of ``mapping`` metaspace or class space (``named`` sorted by start)."""
    index = max(bisect.bisect_right(starts, mapping.start) - 1, 0)
    while index < len(named) and named[index].start < mapping.end:
        region = named[index]
        if region.end > mapping.start and region.owner in ("metaspace", "class-space"):
            return True
        index += 1
    return False


def glibc_chunk_candidates(mappings: list[Mapping], regions: list[Region]) -> Candidates:
    """Where glibc's mmapped chunks can be: the private read-write anonymous mappings with resident pages, outside
    glibc's own heaps, the threads' stacks (a mapping holding a stack pointer, ``[stack]``, System.map's stacks),
    the Java heap and the JVM's regions known by their exact range (the start-up log's, the code heaps', the
    metaspace nodes'), adjacent ones joined (a chunk the kernel split into two mappings is one range); and of those,
    the mappings System.map names (its other regions): it names each mapping by the JVM region in it, and the kernel
    merges a chunk mapped next to one of the JVM's into the same mapping (measured on JDK 25: two 1 MiB chunks in a
    mapping System.map calls GC, a 516 KiB one in one it calls CODE), so a chunk is looked for at their edges first
    (inside them the JVM's data has what looks like a header: metaspace, measured), and only ever there in those it
    calls META or CLASS (``metadata``)."""
    exact = sorted((r for r in regions if r.source not in ("stack-pointer", "system-map")
                    or r.owner in ("java-heap", "thread-stacks")), key=lambda r: r.start)
    starts = [r.start for r in exact]
    named = sorted((r for r in regions if r.source == "system-map"), key=lambda r: r.start)
    named_starts = [r.start for r in named]
    pointers = sorted(r.start for r in regions if r.source == "stack-pointer")
    arenas = _glibc_arena_heaps(mappings)
    parts: list[tuple[int, int]] = []
    edges: set[tuple[int, int]] = set()
    metadata: set[tuple[int, int]] = set()
    for mapping in mappings:
        if not mapping.anon_bytes or not mapping.perms.startswith("rw") or mapping.perms[3:4] != "p" \
                or mapping.name and not mapping.name.startswith("[anon:") or mapping.start in arenas:
            continue
        at = bisect.bisect_left(pointers, mapping.start)
        if at < len(pointers) and pointers[at] < mapping.end:
            continue  # a thread's stack
        outside = _outside(mapping.start, mapping.end, exact, starts)
        if outside and _outside(mapping.start, mapping.end, named, named_starts) != [(mapping.start, mapping.end)]:
            parts.extend(outside)  # a mapping System.map names: on its own, its edges first
            edges.update(outside)
            if _named_metadata(mapping, named, named_starts):
                metadata.update(outside)
            continue
        for low, high in outside:
            if parts and parts[-1][1] == low and parts[-1] not in edges:
                parts[-1] = (parts[-1][0], high)
            else:
                parts.append((low, high))
    return Candidates(parts, frozenset(edges), frozenset(metadata))


def attribute(mappings: list[Mapping], regions: list[Region], backend: str | None, sources: list[str],
              threads: int, allocator_ranges: list[tuple[int, int]] | None = None,
              resident_in: Callable[[list[tuple[int, int]]], int] = anonymous_bytes,
              find_chunks: FindChunks | None = None,
              ended_stack: Callable[[Mapping], bool | None] | None = ended_thread_stack,
              ) -> AddressAttribution:
    """Each mapping's anonymous bytes to one owner: the JVM region it lies in, else a thread's stack (the mapping
    holding a stack pointer, or ``[stack]``), else the allocator's own mappings (the ranges it recorded, given as
    ``allocator_ranges``; when glibc answers malloc, ``[heap]``, its aligned arena heaps and the mmapped chunks
    ``find_chunks`` finds by their headers in ``glibc_chunk_candidates``, when they add up to glibc's own figure),
    else the private pages of a file mapping, else an ended thread's stack kept in glibc's stack cache (a thread
    stack's shape with no stack pointer in it, which ``ended_stack``, reading its thread descriptor, says has ended;
    None: not looked for), else an anonymous mapping of someone else.

    A mapping the allocator's ranges cover only in part is split: the allocator's share is what ``resident_in`` (the
    kernel's pagemap) counts in the covered part, at most the mapping's anonymous bytes, and the rest goes to the
    owner the mapping would have without it; so the owners still sum exactly to the anonymous RSS."""
    chunks: GlibcChunks | None = None
    walked: list[tuple[int, int]] = []
    if backend == "glibc" and find_chunks is not None and allocator_ranges is None:
        search = find_chunks(glibc_chunk_candidates(mappings, regions),
                             lambda: glibc_chunk_candidates(_mappings_now(), regions))
        chunks, walked = search.chunks, search.ranges
        if chunks.how == "found":
            allocator_ranges = search.ranges
    ordered = sorted(regions, key=lambda r: r.start)
    starts = [r.start for r in ordered]
    ranges = sorted(allocator_ranges or [])
    range_starts = [low for low, _ in ranges]
    arenas = _glibc_arena_heaps(mappings) if backend == "glibc" else set()
    heaps, rests = glibc_merged_heaps(mappings) if backend == "glibc" else ([], set())
    # A chunk across a 64 MiB boundary with an inaccessible mapping after it has a merged heap's shape: not a heap.
    heaps = [(low, high) for low, high in heaps if not _covered(Mapping(low, high, "", "", 0, 0, 0), walked,
                                                                 [start for start, _ in walked])]
    arenas |= {rest for rest in rests if any(high == rest for _, high in heaps)} if heaps else set()
    heap_starts = [low for low, _ in heaps]
    resident = dict.fromkeys(OWNERS, 0)
    size = dict.fromkeys(OWNERS, 0)
    count = dict.fromkeys(OWNERS, 0)
    shared = 0
    stacks = 0
    split = 0
    in_ranges = 0  # the anonymous bytes in the allocator's ranges (recorded, or glibc's chunks found)
    unowned: list[UnownedMapping] = []
    cached = [0, 0, 0]  # found, their anonymous bytes, shapes whose descriptor was read
    below: Mapping | None = None
    region_count = len(ordered)
    for mapping in mappings:
        below, mapping_below = mapping, below
        anon = mapping.anon_bytes
        if mapping.name.startswith("/"):
            # Most mappings are a file's (three in four in the worker): the allocator's ranges and glibc's heaps are
            # never one, so unless a JVM region lies in it (the CDS archive), its private pages, without the rest
            # of this loop (a snapshot's attribution took 2 ms, most of it here).
            index = max(bisect.bisect_right(starts, mapping.start) - 1, 0)
            while index < region_count and ordered[index].end <= mapping.start:
                index += 1
            if index == region_count or ordered[index].start >= mapping.end:
                resident["file-private"] += anon
                size["file-private"] += mapping.size_bytes
                count["file-private"] += 1
                continue
        covered = _covered(mapping, ranges, range_starts) if ranges and not mapping.name.startswith("/") else []
        covered_bytes = sum(high - low for low, high in covered) if covered else 0
        heap_part = _covered(mapping, heaps, heap_starts) if heaps and not mapping.name else []
        if heap_part:  # an arena heap merged with its neighbour: its share page by page, as for recorded ranges
            share = min(resident_in(heap_part), anon) if anon else 0
            heap_bytes = sum(high - low for low, high in heap_part)
            resident["malloc-arenas"] += share
            size["malloc-arenas"] += heap_bytes
            anon -= share
            covered_bytes += heap_bytes
            split += 1
        if covered and covered_bytes == mapping.size_bytes and not heap_part:
            resident["malloc-arenas"] += anon
            in_ranges += anon
            size["malloc-arenas"] += mapping.size_bytes
            count["malloc-arenas"] += 1
            continue
        if covered:
            share = min(resident_in(covered), anon) if anon else 0
            resident["malloc-arenas"] += share
            in_ranges += share
            size["malloc-arenas"] += sum(high - low for low, high in covered)
            anon -= share
            split += 1
        overlaps: dict[Owner, int] = {}
        index = max(bisect.bisect_right(starts, mapping.start) - 1, 0)
        while index < len(ordered) and ordered[index].start < mapping.end:
            region = ordered[index]
            overlap = min(region.end, mapping.end) - max(region.start, mapping.start)
            if overlap > 0:
                overlaps[region.owner] = overlaps.get(region.owner, 0) + overlap
                stacks += region.source == "stack-pointer"
            index += 1
        owner: Owner
        if overlaps:
            owner = max(overlaps, key=lambda o: overlaps[o])
            if len(overlaps) > 1:
                shared += 1
        elif mapping.name == "[stack]":
            owner = "thread-stacks"
        elif mapping.start in arenas or (backend == "glibc" and mapping.name == "[heap]"):
            owner = "malloc-arenas"
        elif mapping.name.startswith("/"):
            owner = "file-private"
        elif ended_stack is not None and anon and not covered and not heap_part \
                and has_stack_shape(mapping, mapping_below) and (ended := ended_stack(mapping)) is not None:
            cached[2] += 1
            owner = "cached-stacks" if ended else "anonymous-mmaps"
            if ended:
                cached[0] += 1
                cached[1] += anon
            else:
                unowned.append(UnownedMapping(mapping.start, mapping.size_bytes, anon))
        else:
            owner = "anonymous-mmaps"
            unowned.append(UnownedMapping(mapping.start, mapping.size_bytes, anon))
        resident[owner] += anon
        size[owner] += mapping.size_bytes - covered_bytes
        count[owner] += 1
    found: Literal["recorded", "glibc-heaps"] | None = (
        "glibc-heaps" if backend == "glibc" else "recorded" if allocator_ranges is not None else None)
    if chunks is not None and chunks.how == "found":
        chunks = dataclasses.replace(chunks, resident_bytes=in_ranges)
    return AddressAttribution(
        owners={o: OwnerResident(resident[o], size[o], count[o]) for o in OWNERS},
        sources=sources, stacks_found=stacks, threads=threads, shared_mappings=shared,
        allocator_mappings=found, split_mappings=split,
        unowned=sorted(unowned, key=lambda m: m.anon_bytes, reverse=True)[:UNOWNED_SHOWN], glibc_chunks=chunks,
        cached_stacks=CachedStacks("descriptor", cached[0], cached[1], cached[2]) if ended_stack is not None else None,
    )
