"""The ledger by address on fabricated mappings: parsers of what the JVM says, the partition, the claim, rounding."""

from __future__ import annotations

from workbench.probes.allocator import SizeClass
from workbench.probes.interpreter import parse_pymalloc_stats
from workbench.probes.process import Mapping
from workbench.probes.regions import (
    Region,
    attribute,
    parse_codecache,
    parse_metaspace_nodes,
    parse_start_up_log,
    parse_system_map,
)
from workbench.report.ledger import AddressView, explain_owner, explain_rounding, named_parts, reconcile

MIB = 1024 * 1024
SYSTEM_MAP = """\
from               to                        vsize prot          rss      hugetlb pgsz notes            info                                  file
0x0000000022000000-0x0000000022020000       131072 rw-p       131072            0 4K   com              CLASS                                 -
0x0000000687400000-0x000000069f000000    398458880 rw-p     20041728            0 4K   com              JAVAHEAP                              -
0x00007f0c44000000-0x00007f0c44190000      1638400 rw-p      1609728            0 4K   com              META                                  -
0x00007f0c887ac000-0x00007f0c888a8000      1032192 rw-p        90112            0 4K   com,nothp        STACK-9172-Attach-Listener            -
0x00007f0c90000000-0x00007f0c90021000       135168 rw-p        12288            0 4K   com              -                                     -
"""
START_UP_LOG = """\
[0.005s][debug][gc,heap,coops] Heap address: 0x0000000687400000, size: 6028 MB, Compressed Oops mode: Zero based
[0.033s][info ][gc,metaspace ] CDS archive(s) mapped at: [0x00007f9be3000000-0x00007f9be3bc7000-0x00007f9be3bc7000), size 12349440
[0.033s][info ][gc,metaspace ] Compressed class space mapped at: 0x00007f9be4000000-0x00007f9c24000000, reserved size: 1073741824
"""
CODECACHE = """\
CodeHeap 'non-profiled nmethods': size=120036Kb used=316Kb max_used=316Kb free=119719Kb
 bounds [0x00007f9c54ec7000, 0x00007f9c55137000, 0x00007f9c5c400000]
CodeHeap 'profiled nmethods': size=120032Kb used=1659Kb max_used=1659Kb free=118372Kb
 bounds [0x00007f9c4d400000, 0x00007f9c4d670000, 0x00007f9c54938000]
"""
METASPACE = """\
vsl non-class-space:
- node #0: base 0x00007f9bdf000000: reserved=65536.00 KB, committed=7936.00 KB ( 12%), used=16384.00 KB ( 25%)
vsl class-space:
- node #0: base 0x00007f9be4000000: reserved=1048576.00 KB, committed=1152.00 KB ( <1%), used=1000.00 KB
"""


def test_system_map_names_the_jvm_regions_and_skips_the_rest() -> None:
    assert parse_system_map(SYSTEM_MAP) == [
        Region(0x22000000, 0x22020000, "class-space", "system-map"),
        Region(0x687400000, 0x69F000000, "java-heap", "system-map"),
        Region(0x7F0C44000000, 0x7F0C44190000, "metaspace", "system-map"),
        Region(0x7F0C887AC000, 0x7F0C888A8000, "thread-stacks", "system-map"),
    ]


def test_jdk17_regions_from_the_start_up_log_codecache_and_metaspace() -> None:
    assert parse_start_up_log(START_UP_LOG) == [
        Region(0x687400000, 0x687400000 + 6028 * MIB, "java-heap", "start-up-log"),
        Region(0x7F9BE4000000, 0x7F9C24000000, "class-space", "start-up-log"),
        Region(0x7F9BE3000000, 0x7F9BE3BC7000, "cds", "start-up-log"),
    ]
    assert parse_codecache(CODECACHE) == [
        Region(0x7F9C54EC7000, 0x7F9C5C400000, "code", "codecache"),
        Region(0x7F9C4D400000, 0x7F9C54938000, "code", "codecache"),
    ]
    # The class space's node is the class space, not metaspace.
    assert parse_metaspace_nodes(METASPACE) == [Region(0x7F9BDF000000, 0x7F9BDF000000 + 64 * MIB, "metaspace",
                                                       "metaspace")]


def _mapping(start: int, size: int, anon: int, name: str = "", perms: str = "rw-p") -> Mapping:
    return Mapping(start, start + size, perms, name, size, anon, anon)


HEAP = 0x687400000
ARENA = 0x7F0000000000  # 64 MiB aligned


def _mappings(heap_touched: int, mmaps: int, stack: int = 69_632) -> list[Mapping]:
    return [
        _mapping(0x400000, 4096, 4096, "/usr/bin/python3.11"),
        _mapping(HEAP, 388 * MIB, heap_touched),
        _mapping(ARENA, 2 * MIB, 1_048_576),  # a glibc arena heap: aligned, the rest of 64 MiB inaccessible
        _mapping(ARENA + 2 * MIB, 62 * MIB, 0, perms="---p"),
        _mapping(0x7F1000000000, 8 * MIB, mmaps),
        _mapping(0x7F2000000000, 8 * MIB, stack),  # a thread's stack: its stack pointer is in it
        _mapping(0x7FFC00000000, 132 * 1024, 40_960, "[stack]"),
    ]


REGIONS = [Region(HEAP, HEAP + 6028 * MIB, "java-heap", "start-up-log"),
           Region(0x7F2000000800, 0x7F2000000801, "thread-stacks", "stack-pointer")]


def test_the_owners_sum_exactly_to_the_anonymous_rss() -> None:
    mappings = _mappings(20_041_728, 3_000_000)
    for backend, arenas, mmaps in (("glibc", 1_048_576, 3_000_000), ("jemalloc", 0, 3_000_000 + 1_048_576)):
        split = attribute(mappings, REGIONS, backend, ["start-up-log", "stack-pointer"], threads=2)
        resident = {owner: share.resident_bytes for owner, share in split.owners.items()}
        assert sum(resident.values()) == sum(m.anon_bytes for m in mappings) == 24_204_992
        assert resident["java-heap"] == 20_041_728
        assert resident["thread-stacks"] == 69_632 + 40_960 and split.stacks_found == 1
        assert resident["malloc-arenas"] == arenas and resident["anonymous-mmaps"] == mmaps
        assert resident["file-private"] == 4096 and split.shared_mappings == 0


def _view(heap: int, mmaps: int, python: int, resident: int, classes: list[SizeClass] | None = None,
          stack: int = 69_632, regions: list[Region] = REGIONS) -> AddressView:
    split = attribute(_mappings(heap, mmaps, stack), regions, "jemalloc", ["start-up-log"], threads=2)
    from dataclasses import replace

    return AddressView(replace(split, python_pools_bytes=python), {"allocator.resident_bytes": resident}, classes)


def test_the_allocators_claim_is_its_resident_uncapped_and_what_it_overcounts_stays_unexplained() -> None:
    # Other anon mmaps: 41 MiB with the unaligned arena-like mapping (glibc's pattern is glibc's only).
    base = _view(16 * MIB, 40 * MIB, 2 * MIB, 45 * MIB)
    # The heap's pages touched: +4 MiB; other anon mmaps +20 MiB; Python +1 MiB; jemalloc says +25 MiB resident,
    # 6 MiB more than the kernel has there: the claim is all 25 MiB and -6 MiB stays unexplained.
    now = _view(20 * MIB, 60 * MIB, 3 * MIB, 70 * MIB)
    deltas = {"process.anon_rss_bytes": 24 * MIB, "nmt.categories.Java Heap.committed_bytes": 0,
              "allocator.resident_bytes": 25 * MIB}
    ledger = reconcile(deltas, "netty", "baseline", "jemalloc", now, base)
    assert ledger is not None and ledger.owners is not None
    changes = {line.owner: line.delta_bytes for line in ledger.owners}
    assert sum(changes.values()) == 24 * MIB
    assert changes["java-heap"] == 4 * MIB and changes["anonymous-mmaps"] == 20 * MIB
    assert ledger.python_pools_delta == MIB
    assert ledger.malloc is not None
    assert (ledger.malloc.figure_bytes, ledger.malloc.claimed_delta) == (70 * MIB, 25 * MIB)
    assert ledger.unexplained_bytes == 20 * MIB - MIB - 25 * MIB and ledger.bound_bytes == MIB
    heap = next(line for line in ledger.owners if line.owner == "java-heap")
    assert explain_owner(heap, ledger) == "+4.0 MiB of pages touched (committed since start)"
    parts = {label.strip(): (value, why) for label, value, why in named_parts(ledger, "jemalloc")}
    assert parts["of which jemalloc holds"] == (25 * MIB, "jemalloc's resident, as it counts it")
    assert parts["unexplained"] == (-6 * MIB, "bound ±1.0 MiB: over; jemalloc counts 6.0 MiB more than the kernel "
                                    "has resident in the anonymous mappings outside the JVM (its resident may count "
                                    "pages of large size classes never touched, or purged); not explained by "
                                    "address")


def test_an_allocator_that_accounts_for_every_page_leaves_nothing_unexplained() -> None:
    base = _view(16 * MIB, 40 * MIB, 2 * MIB, 45 * MIB)
    now = _view(16 * MIB, 60 * MIB, 3 * MIB, 64 * MIB)  # +20 MiB of mmaps: Python +1 MiB, jemalloc +19 MiB
    ledger = reconcile({"process.anon_rss_bytes": 20 * MIB}, "netty", "baseline", "jemalloc", now, base)
    assert ledger is not None and ledger.unexplained_bytes == 0
    assert named_parts(ledger, "jemalloc")[-1] == ("  unexplained", 0, "bound ±1.0 MiB: within")


def test_a_missing_owner_shows_as_unexplained_over_the_bound() -> None:
    # A thread's stack grows by 3 MiB while the allocator grows by the 10 MiB of mmaps it holds.
    deltas = {"process.anon_rss_bytes": 13 * MIB}
    found = reconcile(deltas, "netty", "baseline", "jemalloc",
                      _view(16 * MIB, 50 * MIB, 2 * MIB, 40 * MIB, stack=3 * MIB + 69_632),
                      _view(16 * MIB, 40 * MIB, 2 * MIB, 30 * MIB))
    assert found is not None and found.unexplained_bytes == 0 and found.owners is not None
    assert {line.owner: line.delta_bytes for line in found.owners}["thread-stacks"] == 3 * MIB
    # Without the thread-stack owner its pages fall into the other anonymous mappings, which no figure claims.
    no_stacks = [region for region in REGIONS if region.owner != "thread-stacks"]
    missing = reconcile(deltas, "netty", "baseline", "jemalloc",
                        _view(16 * MIB, 50 * MIB, 2 * MIB, 40 * MIB, stack=3 * MIB + 69_632, regions=no_stacks),
                        _view(16 * MIB, 40 * MIB, 2 * MIB, 30 * MIB, regions=no_stacks))
    assert missing is not None and missing.unexplained_bytes == 3 * MIB
    assert missing.bound_bytes is not None and missing.unexplained_bytes > missing.bound_bytes


def test_what_the_allocator_does_not_cover_stays_unexplained() -> None:
    base = _view(16 * MIB, 40 * MIB, 2 * MIB, 30 * MIB)
    now = _view(16 * MIB, 50 * MIB, 2 * MIB, 33 * MIB)  # +10 MiB of mmaps, the allocator only +3 MiB
    ledger = reconcile({"process.anon_rss_bytes": 10 * MIB}, "netty", "baseline", "jemalloc", now, base)
    assert ledger is not None and ledger.unexplained_bytes == 7 * MIB
    assert named_parts(ledger, "jemalloc")[-1] == (
        "  unexplained", 7 * MIB, "bound ±1.0 MiB: over; 7.0 MiB of growth in anonymous mappings no owner is found for")


def test_a_64_mib_direct_buffer_with_nmts_header_is_rounded_into_the_80_mib_class() -> None:
    base = _view(16 * MIB, 40 * MIB, 0, 30 * MIB, [SizeClass("large", 5 * MIB, 1, 5 * MIB)])
    now = _view(16 * MIB, 40 * MIB, 0, 30 * MIB, [SizeClass("large", 80 * MIB, 1, 80 * MIB),
                                                SizeClass("large", 5 * MIB, 1, 5 * MIB)])
    deltas = {"process.anon_rss_bytes": 0, "nmt.categories.Other.malloc_bytes": 64 * MIB + 16}
    ledger = reconcile(deltas, "netty", "baseline", "jemalloc", now, base)
    assert ledger is not None and ledger.rounding is not None
    assert (ledger.rounding.rounding_bytes, ledger.rounding.class_bytes) == (16 * MIB - 16, 80 * MIB)
    assert explain_rounding(ledger.rounding) == (
        "67,108,880 B requested in the 80.0 MiB size class (+16.0 MiB, 20.0 % of the class): size-class rounding")
    # A request that does not fit the class (the class below would hold it) is not called rounding.
    misfit = reconcile({**deltas, "nmt.categories.Other.malloc_bytes": 60 * MIB}, "netty", "baseline", "jemalloc",
                       now, base)
    assert misfit is not None and misfit.rounding is None


def test_pymalloc_pools_in_use_from_its_statistics() -> None:
    text = ("# bytes in allocated blocks        =            1,004,928\n"
            "# bytes in available blocks        =              361,056\n"
            "# bytes lost to pool headers       =                4,032\n"
            "# bytes lost to quantization       =                6,240\n"
            "# bytes lost to arena alignment    =               32,768\n")
    assert parse_pymalloc_stats(text) == 1_004_928 + 361_056 + 4_032 + 6_240
    assert parse_pymalloc_stats("pymalloc is off") is None


# --- the allocator's own mappings, by the ranges it recorded ---------------------------------------------------------

JE = 0x7F3000000000  # a range jemalloc recorded: a mapping of its own, and one the kernel merged with a neighbour


def _recorded(allocator_whole: int, allocator_part: int, neighbour: int) -> list[Mapping]:
    return [
        _mapping(HEAP, 388 * MIB, 16 * MIB),
        _mapping(JE, 64 * MIB, allocator_whole),
        # 4 MiB of jemalloc's range and 4 MiB of someone else's, one mapping: split page by page.
        _mapping(JE + 64 * MIB, 8 * MIB, allocator_part + neighbour),
        _mapping(0x7F4000000000, 2 * MIB, 1 * MIB),  # nobody's
    ]


RANGES = [(JE, JE + 68 * MIB)]


def test_recorded_ranges_make_the_allocators_mappings_an_owner_and_a_shared_mapping_is_split_exactly() -> None:
    asked: list[list[tuple[int, int]]] = []

    def pagemap(parts: list[tuple[int, int]]) -> int:
        asked.append(parts)
        return 3 * MIB  # what the kernel has resident in jemalloc's 4 MiB of the merged mapping

    mappings = _recorded(40 * MIB, 3 * MIB, 2 * MIB)
    split = attribute(mappings, REGIONS[:1], "jemalloc", ["start-up-log"], threads=1, allocator_ranges=RANGES,
                      resident_in=pagemap)
    resident = {owner: share.resident_bytes for owner, share in split.owners.items()}
    assert asked == [[(JE + 64 * MIB, JE + 68 * MIB)]]  # only the part of the shared mapping, never a whole one
    assert resident["malloc-arenas"] == 40 * MIB + 3 * MIB
    assert resident["anonymous-mmaps"] == 2 * MIB + 1 * MIB and resident["java-heap"] == 16 * MIB
    assert sum(resident.values()) == sum(m.anon_bytes for m in mappings)
    assert split.allocator_mappings == "recorded" and split.split_mappings == 1
    assert [m.anon_bytes for m in split.unowned or []] == [2 * MIB, 1 * MIB]
    # A pagemap count above what smaps has in the mapping is capped by it: the owners still add up.
    over = attribute(mappings, REGIONS[:1], "jemalloc", [], threads=1, allocator_ranges=RANGES,
                     resident_in=lambda parts: 9 * MIB)
    assert sum(s.resident_bytes for s in over.owners.values()) == sum(m.anon_bytes for m in mappings)
    assert over.owners["malloc-arenas"].resident_bytes == 40 * MIB + 5 * MIB


def _recorded_view(whole: int, part: int, neighbour: int, figures: dict[str, int],
                   classes: list[SizeClass] | None = None) -> AddressView:
    split = attribute(_recorded(whole, part, neighbour), REGIONS[:1], "jemalloc", [], threads=1,
                      allocator_ranges=RANGES, resident_in=lambda parts: part)
    from dataclasses import replace

    return AddressView(replace(split, python_pools_bytes=None), figures, classes)


def test_by_recorded_ranges_nothing_is_claimed_and_the_allocators_overcount_is_named_not_unexplained() -> None:
    base = _recorded_view(40 * MIB, 3 * MIB, 2 * MIB, {"allocator.resident_bytes": 50 * MIB,
                                                      "allocator.raw.dirty_bytes": MIB,
                                                      "allocator.raw.dirty_decay_ms": 10_000},
                          [SizeClass("large", 5 * MIB, 1, 5 * MIB), SizeClass("small", 48, 80, 3840, 1, 85)])
    # jemalloc's mappings: +800 MiB resident by the kernel, while jemalloc's own resident says +896 MiB (a 896 MiB
    # extent for 825,000,000 B requested, its tail never touched); the other mappings +1 MiB (not the allocator's).
    now = _recorded_view(840 * MIB, 3 * MIB, 3 * MIB, {"allocator.resident_bytes": 946 * MIB,
                                                      "allocator.raw.dirty_bytes": 3 * MIB,
                                                      "allocator.raw.dirty_decay_ms": 10_000},
                         [SizeClass("large", 896 * MIB, 1, 896 * MIB), SizeClass("large", 5 * MIB, 1, 5 * MIB),
                          SizeClass("small", 48, 170, 8160, 2, 85)])
    deltas = {"process.anon_rss_bytes": 801 * MIB, "allocator.resident_bytes": 896 * MIB,
              "allocator.raw.dirty_bytes": 2 * MIB, "nmt.categories.Other.malloc_bytes": 825_000_000}
    ledger = reconcile(deltas, "unsafe", "baseline", "jemalloc", now, base)
    assert ledger is not None and ledger.owners is not None
    changes = {line.owner: line.delta_bytes for line in ledger.owners}
    assert changes["malloc-arenas"] == 800 * MIB and changes["anonymous-mmaps"] == MIB
    assert sum(changes.values()) == deltas["process.anon_rss_bytes"]
    assert ledger.malloc is None and ledger.unexplained_bytes == MIB  # the other mappings' growth, not claimed
    assert ledger.rounding is not None and ledger.rounding.rounding_bytes == 896 * MIB - 825_000_000
    assert ledger.sizes is not None and ledger.sizes.small_free_bytes == (2 * 85 - 170) * 48 == 0
    layer = ledger.malloc_layer
    assert layer is not None and layer.kernel_delta == 800 * MIB and layer.dirty_bytes == 3 * MIB
    arenas = next(line for line in ledger.owners if line.owner == "malloc-arenas")
    assert explain_owner(arenas, ledger).split("; ") == [
        "the kernel has +800.0 MiB resident in jemalloc's own mappings (the ranges it recorded)",
        "jemalloc says resident +896.0 MiB",
        "jemalloc's resident counts 96.0 MiB more than the kernel has in its mappings: pages it holds that were "
        "never touched",
        "jemalloc: 825,000,000 B requested in the 896.0 MiB size class (+109.2 MiB, 12.2 % of the class): "
        "size-class rounding",
        "jemalloc keeps 3.0 MiB of freed pages (dirty, purged after dirty_decay_ms=10000), +2.0 MiB since the "
        "baseline",
        "0 B free inside its small slabs (100.0 % of their regions in use), -240 B since the baseline",
    ]
    parts = {label.strip(): (value, why) for label, value, why in named_parts(ledger, "jemalloc")}
    assert parts["of which jemalloc holds"] == (0, "none: jemalloc's mappings are an owner of their own, found by "
                                                   "address")
    assert parts["unexplained"] == (MIB, "bound ±16.0 MiB: within")


def test_rounding_is_summed_over_the_large_classes_that_grew() -> None:
    base = _view(16 * MIB, 40 * MIB, 0, 30 * MIB, [])
    now = _view(16 * MIB, 40 * MIB, 0, 30 * MIB, [SizeClass("large", 896 * MIB, 2, 1792 * MIB),
                                                SizeClass("large", 448 * MIB, 1, 448 * MIB)])
    requested = 2 * 825_000_000 + 412_500_000
    ledger = reconcile({"process.anon_rss_bytes": 0, "nmt.categories.Other.malloc_bytes": requested}, "netty",
                       "baseline", "jemalloc", now, base)
    assert ledger is not None and ledger.rounding is not None
    assert (ledger.rounding.extents, ledger.rounding.classes_bytes) == (3, 2240 * MIB)
    assert ledger.rounding.rounding_bytes == 2240 * MIB - requested


def test_pagemap_counts_the_pages_written_in_a_mapping_of_this_process() -> None:
    import mmap

    from workbench.probes.pages import PAGE_BYTES, anonymous_bytes

    area = mmap.mmap(-1, 16 * PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        for page in (0, 5, 6):
            area[page * PAGE_BYTES] = 1
        _ = area[9 * PAGE_BYTES]  # read only: the shared zero page, not this process's
        import ctypes

        start = ctypes.addressof(ctypes.c_char.from_buffer(area))
        assert anonymous_bytes([(start, start + 16 * PAGE_BYTES)]) == 3 * PAGE_BYTES
        assert anonymous_bytes([(start + 6 * PAGE_BYTES, start + 16 * PAGE_BYTES)]) == PAGE_BYTES
    finally:
        area.close()


def test_pagemap_counting_makes_no_python_object_per_page() -> None:
    # It runs at every snapshot over mappings the kernel merged: a tuple of 65,536 ints per read was a ~1 MiB passing
    # allocation that moved glibc's heap top by up to 900 KiB a step (measured in the thirty-snapshot test).
    import ctypes
    import mmap
    import tracemalloc

    from workbench.probes.pages import PAGE_BYTES, anonymous_bytes

    pages = 100_000
    area = mmap.mmap(-1, pages * PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        for page in range(0, pages, 10):
            area[page * PAGE_BYTES] = 1
        start = ctypes.addressof(ctypes.c_char.from_buffer(area))
        anonymous_bytes([(start, start + PAGE_BYTES)])  # the module's buffer exists before the measurement
        tracemalloc.start()
        try:
            counted = anonymous_bytes([(start, start + pages * PAGE_BYTES)])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert counted == pages // 10 * PAGE_BYTES
        assert peak < 16 * 1024, peak  # 4 KiB of top bytes per 32 KiB read, and the file object
    finally:
        area.close()


def test_tcmalloc_s_free_page_heap_and_caches_are_said_from_its_figures() -> None:
    def figures(resident: int, free: int, unmapped: int, thread: int, central: int, transfer: int) -> dict[str, int]:
        return {"allocator.resident_bytes": resident, "allocator.raw.tcmalloc.pageheap_free_bytes": free,
                "allocator.raw.tcmalloc.pageheap_unmapped_bytes": unmapped,
                "allocator.raw.tcmalloc.thread_cache_free_bytes": thread,
                "allocator.raw.tcmalloc.central_cache_free_bytes": central,
                "allocator.raw.tcmalloc.transfer_cache_free_bytes": transfer}

    base = _recorded_view(40 * MIB, 3 * MIB, 2 * MIB, figures(44 * MIB, MIB, 0, 512 * 1024, 0, 0))
    now = _recorded_view(60 * MIB, 3 * MIB, 2 * MIB, figures(66 * MIB, 3 * MIB, 5 * MIB, MIB, 256 * 1024, 256 * 1024))
    deltas = {"process.anon_rss_bytes": 20 * MIB, "allocator.resident_bytes": 22 * MIB,
              "allocator.raw.tcmalloc.pageheap_free_bytes": 2 * MIB}
    ledger = reconcile(deltas, "unsafe", "baseline", "tcmalloc", now, base)
    assert ledger is not None and ledger.owners is not None and ledger.malloc_layer is not None
    layer = ledger.malloc_layer
    assert (layer.page_heap_free_bytes, layer.page_heap_free_delta, layer.page_heap_unmapped_bytes,
            layer.tcache_bytes, layer.central_cache_bytes) == (3 * MIB, 2 * MIB, 5 * MIB, MIB, 512 * 1024)
    arenas = next(line for line in ledger.owners if line.owner == "malloc-arenas")
    assert explain_owner(arenas, ledger).split("; ") == [
        "the kernel has +20.0 MiB resident in tcmalloc's own mappings (the ranges it recorded)",
        "tcmalloc says resident +22.0 MiB",
        "tcmalloc's resident counts 2.0 MiB more than the kernel has in its mappings: pages it holds that were "
        "never touched",
        "tcmalloc's page heap keeps 3.0 MiB of free pages mapped (pageheap_free_bytes: never handed out, or freed "
        "and not yet released, which tcmalloc counts as resident), +2.0 MiB since the baseline, and 5.0 MiB of free "
        "pages released to the system (pageheap_unmapped_bytes, address space kept)",
        "the threads' caches hold 1.0 MiB of freed small regions",
        "its central and transfer caches hold 512.0 KiB of freed small objects",
    ]
    # jemalloc has none of tcmalloc's figures: nothing of them is said
    jemalloc = reconcile(deltas, "unsafe", "baseline", "jemalloc", now, base)
    assert jemalloc is not None and jemalloc.malloc_layer is not None
    assert jemalloc.malloc_layer.page_heap_free_bytes == 3 * MIB  # the figures are read by name, whoever has them
