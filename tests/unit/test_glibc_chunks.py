"""glibc's mmapped chunks by their headers: the walk's arithmetic on fabricated headers, the reader on this process's
own pages, the check against hblkhd, and what the attribution and the ledger make of it."""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable
from dataclasses import replace

from workbench.probes.glibc_chunks import Candidates, ChunkReader, ChunkSearch, GlibcChunks, search, subtract, walk
from workbench.probes.pages import PAGE_BYTES, anonymous_bytes
from workbench.probes.process import Mapping
from workbench.probes.regions import Region, attribute, glibc_chunk_candidates
from workbench.report.ledger import AddressView, named_parts, reconcile

PAGE = 4096
BASE = 0x7F0000100000
MIB = 1024 * 1024


def _memory(headers: dict[int, tuple[int, int]]) -> tuple[
        list[tuple[int, int]], list[int], Callable[[int], tuple[int, int] | None]]:
    """Fabricated memory: the present pages are those with a header; reading one records its address."""
    present = sorted((address, address + PAGE) for address in headers)
    read: list[int] = []

    def header(address: int) -> tuple[int, int] | None:
        read.append(address)
        return headers.get(address)

    return present, read, header


def test_the_walk_jumps_chunk_by_chunk_and_skips_what_is_not_a_header() -> None:
    headers = {
        BASE: (0, (257 * PAGE) | 0x2),  # a 1 MiB request's chunk: 1 MiB + 4 KiB
        BASE + 257 * PAGE: (0, (2 * PAGE) | 0x2),  # merged right after it by the kernel
        BASE + 260 * PAGE: (0, (4 * PAGE) | 0x3),  # PREV_INUSE set: an arena chunk's header, not an mmapped one
        BASE + 264 * PAGE: (16, (4 * PAGE) | 0x2),  # prev_size not 0
        BASE + 268 * PAGE: (0, 4 * PAGE + 16 | 0x2),  # not whole pages
        BASE + 272 * PAGE: (0, (8 * PAGE) | 0x2),
        BASE + 290 * PAGE: (0, (64 * PAGE) | 0x2),  # runs past the end of its mapping: not a chunk
    }
    present, read, header = _memory(headers)
    parts = [(BASE, BASE + 300 * PAGE)]
    assert walk(parts, present, header) == [
        (BASE, BASE + 257 * PAGE), (BASE + 257 * PAGE, BASE + 259 * PAGE), (BASE + 272 * PAGE, BASE + 280 * PAGE)]
    # Only present pages are read, and none inside a chunk found.
    assert read == [BASE, BASE + 257 * PAGE, BASE + 260 * PAGE, BASE + 264 * PAGE, BASE + 268 * PAGE,
                    BASE + 272 * PAGE, BASE + 290 * PAGE]


def test_in_a_mapping_the_jvm_names_a_chunk_counts_only_at_its_edges() -> None:
    # [chunk][chunk][JVM data, with what looks like a header][chunk ending at the mapping's end]
    headers = {
        BASE: (0, (4 * PAGE) | 0x2),
        BASE + 4 * PAGE: (0, (2 * PAGE) | 0x2),
        BASE + 6 * PAGE: (7, 9),  # the JVM's data
        BASE + 10 * PAGE: (0, (4 * PAGE) | 0x2),  # metaspace's look-alike: inside, not at an edge
        BASE + 20 * PAGE: (1, 2),
        BASE + 24 * PAGE: (0, (8 * PAGE) | 0x2),
        BASE + 28 * PAGE: (5, 5),  # the end chunk's own data
    }
    present, _, header = _memory(headers)
    part = (BASE, BASE + 32 * PAGE)
    assert walk([part], present, header, edges=frozenset({part})) == [
        (BASE, BASE + 4 * PAGE), (BASE + 4 * PAGE, BASE + 6 * PAGE), (BASE + 24 * PAGE, BASE + 32 * PAGE)]
    # Walked as a whole, the look-alike would count.
    assert (BASE + 10 * PAGE, BASE + 14 * PAGE) in walk([part], present, header)


def test_subtract_leaves_what_is_outside() -> None:
    assert subtract([(0, 100), (200, 300)], [(10, 20), (50, 250)]) == [(0, 10), (20, 50), (250, 300)]
    assert subtract([(0, 100)], []) == [(0, 100)]


def test_the_reader_finds_chunks_in_its_own_pages_faulting_nothing_in_and_search_checks_the_figures() -> None:
    pages = 64
    region = mmap.mmap(-1, pages * PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    try:
        def put(page: int, prev_size: int, size: int) -> None:
            region[page * PAGE_BYTES:page * PAGE_BYTES + 16] = prev_size.to_bytes(8, "little") + size.to_bytes(
                8, "little")

        put(0, 0, 16 * PAGE_BYTES | 0x2)
        put(16, 0, 8 * PAGE_BYTES | 0x2)
        put(24, 3, 77)  # someone else's data
        put(40, 0, 4 * PAGE_BYTES | 0x2)
        part = (base, base + pages * PAGE_BYTES)
        resident = anonymous_bytes([part])
        reader = ChunkReader()
        chunks = [(base, base + 16 * PAGE_BYTES), (base + 16 * PAGE_BYTES, base + 24 * PAGE_BYTES),
                  (base + 40 * PAGE_BYTES, base + 44 * PAGE_BYTES)]
        found = search([part], lambda: (3, 28 * PAGE_BYTES), reader)
        assert found == ChunkSearch(GlibcChunks("found", 3, 28 * PAGE_BYTES, 3, 28 * PAGE_BYTES), chunks)
        assert anonymous_bytes([part]) == resident == 4 * PAGE_BYTES  # no page faulted in by the search

        # The next search keeps what it found (its headers still there) and walks only what is new; a chunk
        # mapped since where someone else's page was is missed by that, so the check fails and it walks afresh.
        put(50, 0, 2 * PAGE_BYTES | 0x2)
        again = search([part], lambda: (4, 30 * PAGE_BYTES), reader)
        assert again.chunks.how == "found" and again.chunks.attempts == 2
        assert again.ranges == chunks + [(base + 50 * PAGE_BYTES, base + 52 * PAGE_BYTES)]

        # A chunk gone (its header no longer there) is not kept.
        put(40, 0, 0)
        assert reader.find([part]) == chunks[:2] + [(base + 50 * PAGE_BYTES, base + 52 * PAGE_BYTES)]

        # Figures the chunks do not add up to: claimed, with what was found.
        wrong = search([part], lambda: (3, 30 * PAGE_BYTES), reader)
        assert wrong == ChunkSearch(GlibcChunks("claimed", 3, 30 * PAGE_BYTES, 3, 26 * PAGE_BYTES, attempts=2),
                                    chunks[:2] + [(base + 50 * PAGE_BYTES, base + 52 * PAGE_BYTES)])
        # The same figures again: the fresh walk that failed on them is not repeated.
        assert search([part], lambda: (3, 30 * PAGE_BYTES), reader).chunks.attempts == 1
        reader.close()
    finally:
        region.close()


def test_a_chunk_mapped_after_the_mappings_were_read_is_found_in_the_candidates_read_again() -> None:
    # The snapshot reads the mappings, then the search reads mallinfo2: a chunk another thread maps in between is in
    # none of the candidates (measured: 2 of 11 chunks, once in ~20 runs of arrow-intvector under load); the search
    # then walks the candidates of the mappings read again (``refresh``), once.
    pages = 32
    region = mmap.mmap(-1, pages * PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    try:
        region[0:16] = (0).to_bytes(8, "little") + (8 * PAGE_BYTES | 0x2).to_bytes(8, "little")
        region[16 * PAGE_BYTES:16 * PAGE_BYTES + 16] = (0).to_bytes(8, "little") + (
            4 * PAGE_BYTES | 0x2).to_bytes(8, "little")
        stale = [(base, base + 16 * PAGE_BYTES)]  # the second chunk's pages are not among the stale candidates
        now = [(base, base + pages * PAGE_BYTES)]
        asked: list[int] = []

        def refresh() -> Candidates:
            asked.append(1)
            return Candidates(now)

        reader, other = ChunkReader(), ChunkReader()
        found = search(stale, lambda: (2, 12 * PAGE_BYTES), reader, refresh=refresh)
        assert found.chunks.how == "found" and asked == [1]
        assert found.ranges == [(base, base + 8 * PAGE_BYTES), (base + 16 * PAGE_BYTES, base + 20 * PAGE_BYTES)]
        # Without it the same search claims, with the one chunk it could see.
        alone = search(stale, lambda: (2, 12 * PAGE_BYTES), other)
        assert (alone.chunks.how, alone.chunks.found_chunks, alone.chunks.found_bytes) == ("claimed", 1, 8 * PAGE_BYTES)
        reader.close()
        other.close()
    finally:
        region.close()


def test_chunks_merged_between_two_of_the_jvm_s_regions_are_found_by_walking_the_named_mappings_whole() -> None:
    # Measured on JDK 25 under glibc (2 of 7 runs of the eleven JDK 25 ledger combinations): one mapping System.map
    # calls CODE held 8 KiB of the JVM's, two 1 MiB chunks, then 20 KiB of the JVM's; at its edges nothing is a chunk.
    # The search walks the named mappings whole when at their edges does not add up, but the metaspace's (its
    # look-alikes, measured), and a reader that needed it walks them whole from then on.
    pages = 80
    region = mmap.mmap(-1, pages * PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    try:
        def put(page: int, prev_size: int, size: int) -> None:
            region[page * PAGE_BYTES:page * PAGE_BYTES + 16] = prev_size.to_bytes(8, "little") + size.to_bytes(
                8, "little")

        put(0, 5, 9)  # the JVM's
        put(2, 0, 16 * PAGE_BYTES | 0x2)
        put(18, 0, 16 * PAGE_BYTES | 0x2)
        put(34, 7, 1)  # the JVM's, to the end of the code mapping
        code = (base, base + 40 * PAGE_BYTES)
        put(40, 3, 3)  # metaspace, with a look-alike inside
        put(50, 0, 4 * PAGE_BYTES | 0x2)
        meta = (base + 40 * PAGE_BYTES, base + pages * PAGE_BYTES)
        chunks = [(base + 2 * PAGE_BYTES, base + 18 * PAGE_BYTES), (base + 18 * PAGE_BYTES, base + 34 * PAGE_BYTES)]
        figures = (2, 32 * PAGE_BYTES)
        edges, metadata = frozenset({code, meta}), frozenset({meta})
        reader = ChunkReader()
        found = search([code, meta], lambda: figures, reader, edges=edges, metadata=metadata)
        assert found == ChunkSearch(GlibcChunks("found", 2, 32 * PAGE_BYTES, 2, 32 * PAGE_BYTES, attempts=2,
                                                named_mappings="whole"), chunks)
        assert reader.whole
        # The next search keeps them (their headers are there): one walk, and it says how the reader walks.
        again = search([code, meta], lambda: figures, reader, edges=edges, metadata=metadata)
        assert (again.chunks.how, again.chunks.attempts, again.chunks.named_mappings) == ("found", 1, "whole")
        # At their edges only (the first of the two walks above) the two chunks are not found.
        edge_only = ChunkReader()
        assert edge_only.find([code, meta], True, edges) == []
        # Walked whole, metaspace too, the look-alike would count and nothing would add up.
        everything = ChunkReader()
        assert everything.find([code, meta], True) == chunks + [(base + 50 * PAGE_BYTES, base + 54 * PAGE_BYTES)]
        for opened in (reader, edge_only, everything):
            opened.close()
    finally:
        region.close()


def test_figures_that_change_during_the_walk_are_walked_again() -> None:
    figures = iter([(1, 8192), (2, 16384), (2, 16384), (2, 16384)])

    class Nothing(ChunkReader):
        def find(self, parts: list[tuple[int, int]], fresh: bool = False,
                 edges: frozenset[tuple[int, int]] = frozenset()) -> list[tuple[int, int]]:
            return [(BASE, BASE + 8192), (BASE + 8192, BASE + 16384)]

    result = search([(BASE, BASE + MIB)], lambda: next(figures), Nothing())
    assert result.chunks == GlibcChunks("found", 2, 16384, 2, 16384, attempts=2)


def _mapping(start: int, size: int, anon: int, name: str = "", perms: str = "rw-p") -> Mapping:
    return Mapping(start, start + size, perms, name, size, anon, anon)


ARENA = 0x7F4000000000  # 64 MiB aligned
STACK = 0x7F5000000000
NEIGHBOUR = 0x7F57FF000000  # 16 MiB below a 64 MiB boundary: someone's mapping the next arena heap merged with
HEAP_AFTER = NEIGHBOUR + 16 * MIB
MERGED = 0x7F6000000000  # a chunk merged with someone else's mapping
JVM_NAMED = 0x7F7000000000


def _process() -> list[Mapping]:
    return [
        _mapping(0x400000, 4096, 4096, "/usr/bin/python3.11"),
        _mapping(0x1000000, 4 * MIB, 2 * MIB, "[heap]"),
        # An arena heap whose inaccessible rest the kernel merged with the guard page mapped after it.
        _mapping(ARENA, 3 * MIB, 3 * MIB),
        # Its rest with pages the heap grew into between the read of the mappings and the count of their pages.
        _mapping(ARENA + 3 * MIB, 61 * MIB + 16384, 475_136, perms="---p"),
        _mapping(STACK, 8 * MIB, 69_632),
        # An arena heap at HEAP_AFTER: its 2 MiB read-write part merged with the 16 MiB before it; its inaccessible
        # rest up to the next boundary.
        _mapping(NEIGHBOUR, 18 * MIB, 2 * MIB + 196_608),
        _mapping(NEIGHBOUR + 18 * MIB, 62 * MIB, 0, perms="---p"),
        _mapping(MERGED, 8 * MIB, 3 * MIB),
        _mapping(JVM_NAMED, 2 * MIB, MIB),
    ]


REGIONS = [Region(STACK + 800, STACK + 801, "thread-stacks", "stack-pointer"),
           Region(JVM_NAMED, JVM_NAMED + 2 * MIB, "gc", "system-map")]


def test_candidates_leave_out_heaps_stacks_and_files_and_look_only_at_the_edges_of_what_system_map_names() -> None:
    parts, edges, metadata = glibc_chunk_candidates(_process(), REGIONS)
    assert parts == [(NEIGHBOUR, NEIGHBOUR + 18 * MIB), (MERGED, MERGED + 8 * MIB), (JVM_NAMED, JVM_NAMED + 2 * MIB)]
    assert edges == frozenset({(JVM_NAMED, JVM_NAMED + 2 * MIB)}) and metadata == frozenset()
    # A mapping System.map calls metaspace is at its edges only, ever (its look-alikes: measured).
    meta = [Region(STACK + 800, STACK + 801, "thread-stacks", "stack-pointer"),
            Region(JVM_NAMED, JVM_NAMED + MIB, "gc", "system-map"),
            Region(JVM_NAMED + MIB, JVM_NAMED + 2 * MIB, "metaspace", "system-map")]
    assert glibc_chunk_candidates(_process(), meta).metadata == frozenset({(JVM_NAMED, JVM_NAMED + 2 * MIB)})


def _found(resident: int | None = None) -> ChunkSearch:
    chunk = (MERGED, MERGED + 4 * MIB + PAGE)
    return ChunkSearch(GlibcChunks("found", 1, 4 * MIB + PAGE, 1, 4 * MIB + PAGE, resident), [chunk])


def test_found_chunks_are_the_allocators_by_address_and_the_owners_still_sum_to_the_anonymous_rss() -> None:
    mappings = _process()
    split = attribute(mappings, REGIONS, "glibc", ["system-map"], threads=2,
                      resident_in=lambda ranges: {(MERGED, MERGED + 4 * MIB + PAGE): 532_480,
                                                  (HEAP_AFTER, HEAP_AFTER + 2 * MIB): 1_900_544}[ranges[0]],
                      find_chunks=lambda candidates, refresh: _found())
    resident = {owner: share.resident_bytes for owner, share in split.owners.items()}
    assert sum(resident.values()) == sum(m.anon_bytes for m in mappings)
    # [heap] 2 MiB + the arena heap 3 MiB and its rest (matched though merged with a neighbour) + the heap merged
    # with the mapping before it, its part page by page + the chunk's 532,480 B resident.
    assert resident["malloc-arenas"] == 2 * MIB + 3 * MIB + 475_136 + 1_900_544 + 532_480
    assert resident["anonymous-mmaps"] == 3 * MIB - 532_480 + 2 * MIB + 196_608 - 1_900_544
    assert split.split_mappings == 2
    assert split.glibc_chunks == GlibcChunks("found", 1, 4 * MIB + PAGE, 1, 4 * MIB + PAGE, 532_480)
    claimed = ChunkSearch(GlibcChunks("claimed", 2, 5 * MIB, 1, 4 * MIB + PAGE), [])
    unsplit = attribute(mappings, REGIONS, "glibc", ["system-map"], threads=2, find_chunks=lambda c, r: claimed,
                        resident_in=lambda ranges: 1_900_544)
    assert unsplit.glibc_chunks == claimed.chunks
    assert unsplit.owners["anonymous-mmaps"].resident_bytes == 3 * MIB + 2 * MIB + 196_608 - 1_900_544


def _view(chunks: GlibcChunks | None, mmaps: int, hblkhd: int, arenas: int = 0) -> AddressView:
    owners = {name: share for name, share in attribute([], [], "glibc", [], threads=1).owners.items()}
    owners["anonymous-mmaps"] = replace(owners["anonymous-mmaps"], resident_bytes=mmaps)
    owners["malloc-arenas"] = replace(owners["malloc-arenas"], resident_bytes=arenas)
    split = replace(attribute([], [], "glibc", [], threads=1), owners=owners, glibc_chunks=chunks)
    return AddressView(split, {"allocator.raw.hblkhd": hblkhd}, None)


def test_chunks_found_at_both_snapshots_claim_nothing_and_one_not_found_claims_hblkhd_with_the_chunks_put_back() -> None:
    base_chunks = GlibcChunks("found", 7, 5_378_048, 7, 5_378_048, 1_204_224)
    now_chunks = GlibcChunks("found", 8, 9_576_448, 8, 9_576_448, 1_736_704)
    deltas = {"process.anon_rss_bytes": 548_864}
    base = _view(base_chunks, 2 * MIB, 5_378_048, 40 * MIB)
    now = _view(now_chunks, 2 * MIB + 16_384, 9_576_448, 40 * MIB + 532_480)
    ledger = reconcile(deltas, "netty", "baseline", "glibc", now, base)
    assert ledger is not None and ledger.malloc is None and ledger.glibc_chunks == "found"
    assert ledger.unexplained_bytes == 16_384
    parts = {label.strip(): (value, why) for label, value, why in named_parts(ledger, "glibc")}
    assert parts["of which glibc holds"][0] == 0
    # At the snapshot the chunks did not add up: hblkhd's +4,198,400 B is claimed against the other anonymous
    # mappings with the baseline's chunks (1,204,224 B, found there) put back.
    missed = replace(now_chunks, how="claimed", found_chunks=7, found_bytes=5_378_048, resident_bytes=None)
    now = _view(missed, 2 * MIB + 16_384 + 1_736_704, 9_576_448, 40 * MIB)
    ledger = reconcile(deltas, "netty", "baseline", "glibc", now, base)
    assert ledger is not None and ledger.malloc is not None and ledger.glibc_chunks == "claimed"
    assert ledger.malloc.claimed_delta == 4_198_400
    assert ledger.unexplained_bytes == (16_384 + 1_736_704 - 1_204_224) - 4_198_400
    parts = {label.strip(): (value, why) for label, value, why in named_parts(ledger, "glibc")}
    assert parts["of which glibc holds"] == (4_198_400, (
        "glibc's mmapped chunks, as it counts them (hblkhd); not found by address here: the chunks found by their "
        "headers (7, 5,378,048 B) are not glibc's own count (hblks 8, hblkhd 9,576,448 B)"))


def test_a_chunk_across_a_64_mib_boundary_before_an_inaccessible_mapping_is_a_chunk_not_a_merged_heap() -> None:
    # A 268 MiB direct buffer's chunk, then someone's inaccessible reservation: the shape of a heap merged with the
    # mapping before it, but the walk found a chunk there.
    big = (HEAP_AFTER - 4 * MIB, HEAP_AFTER + 264 * MIB)
    mappings = [_mapping(big[0], big[1] - big[0], 8 * MIB), _mapping(big[1], 128 * MIB, 0, perms="---p")]
    found = ChunkSearch(GlibcChunks("found", 1, big[1] - big[0], 1, big[1] - big[0]), [big])
    split = attribute(mappings, [], "glibc", [], threads=1, find_chunks=lambda candidates, refresh: found,
                      resident_in=lambda ranges: -1)
    assert split.owners["malloc-arenas"].resident_bytes == 8 * MIB and split.split_mappings == 0
    assert split.glibc_chunks == replace(found.chunks, resident_bytes=8 * MIB)
