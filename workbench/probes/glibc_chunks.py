"""glibc's mmapped chunks, found by their headers.

glibc keeps no list of the chunks it maps for large requests, and maps them from inside malloc (interposing mmap
does not see them), but each chunk says what it is: it starts at the start of its mapping, with a header of
``prev_size`` 0 and a ``size`` that is the mapping's whole size in pages with IS_MMAPPED (0x2) as its only flag bit
(sysmalloc_mmap; a memalign'd chunk sits at an offset inside such a mapping, and the mapping's own header stays as it
was written). The kernel may merge adjacent chunks, and other anonymous mappings, into one mapping, so the search
walks each candidate range chunk by chunk: at a present page, a header that fits is a chunk and the walk jumps past
it; anything else moves the walk one page on. Only present pages are read (the first page of a chunk is always
written, so a chunk is never missed for not being present, and nothing is faulted in), through ``/proc/self/mem``
(a page unmapped meanwhile is an error to the read, never a fault in the process).

A search is only taken when it is exact: the chunks found must sum to mallinfo2's ``hblkhd`` and number its
``hblks``, both read before and after the walk with the same values. Otherwise the figure is claimed instead, and
the attribution says so (``GlibcChunks.how``).

The mappings System.map names are walked at their edges first (inside them the JVM's data has look-alikes); when
that does not add up, walked whole, but metaspace's and the class space's, where the look-alikes were measured: the
kernel also merges chunks mapped between two of the JVM's regions into one mapping with both (measured on JDK 25:
two 1 MiB chunks between 8 KiB and 20 KiB of what System.map calls CODE, in 2 of 7 runs of the eleven JDK 25
ledger combinations under glibc, one scenario each time).
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from workbench.probes.pages import PAGE_BYTES

IS_MMAPPED = 0x2
SIZE_BITS = 0x7  # PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA: the low bits of a chunk's size field

Range = tuple[int, int]


@dataclass(frozen=True)
class GlibcChunks:
    """How glibc's mmapped chunks were found at one snapshot, and what they hold."""

    # "found": the chunks found by their headers sum exactly to hblkhd and number hblks, and are an owner's by
    # address (malloc-arenas); "claimed": they do not (named in ``found_bytes``/``found_chunks``), so the ledger
    # claims hblkhd's change instead.
    how: Literal["found", "claimed"]
    hblks: int  # mallinfo2's count of mmapped chunks, at the search
    hblkhd: int  # mallinfo2's bytes in them, at the search
    found_chunks: int  # chunks the walk found by their headers
    found_bytes: int  # their sizes, summed
    # The kernel's anonymous pages in exactly those chunks (smaps for a mapping they fill, pagemap page by page for
    # one they share); None when they were not found (how == "claimed").
    resident_bytes: int | None = None
    attempts: int = 1  # walks made: hblkhd or hblks changed during a walk (another thread mapped or freed one)
    # How the mappings System.map names were walked: "edges" (at their edges only), or "whole" (but metaspace's and
    # the class space's) once at their edges did not add up; a reader that needed it walks them whole after.
    named_mappings: Literal["edges", "whole"] = "edges"


@dataclass(frozen=True)
class ChunkSearch:
    """One search: its summary and the ranges of the chunks it found by their headers (start, end), sorted; they
    are glibc's chunks by address only when ``chunks.how`` is "found"."""

    chunks: GlibcChunks
    ranges: list[Range]


def _chunk_at(at: int, header: Callable[[int], tuple[int, int] | None], page: int) -> int:
    """The size of the mmapped chunk whose header is at ``at``; 0 when the header is not one: prev_size 0,
    IS_MMAPPED the only flag bit, a size of whole pages."""
    fields = header(at)
    if fields is None:
        return 0
    prev_size, size = fields
    total = size & ~SIZE_BITS
    return total if prev_size == 0 and size & SIZE_BITS == IS_MMAPPED and total > 0 and total % page == 0 else 0


def walk(parts: list[Range], present: list[Range], header: Callable[[int], tuple[int, int] | None],
         page: int = PAGE_BYTES, edges: frozenset[Range] = frozenset()) -> list[Range]:
    """The mmapped chunks in ``parts`` (page-aligned candidate ranges, sorted), given the present pages
    (``present``: sorted ranges) and ``header`` (an address's prev_size and size fields; None: unreadable): at each
    present page, a header of a chunk that ends inside the part is a chunk, and the walk goes on after it; otherwise
    one page on. In a part of ``edges`` (a mapping the JVM names, which the kernel may have merged with a chunk on
    either side) a chunk counts only at its edges: a chain of chunks from its start, or one ending at its end."""
    chunks: list[Range] = []
    present_ends = [high for _, high in present]

    def next_present(at: int, high: int) -> int:
        """The first present page at or after ``at`` below ``high``; ``high`` when there is none."""
        index = bisect.bisect_right(present_ends, at)
        if index == len(present) or present[index][0] >= high:
            return high
        return max(at, present[index][0])

    for low, high in parts:
        if (low, high) in edges:
            chunks.extend(_edges(low, high, present, present_ends, header, page))
            continue
        at = next_present(low, high)
        while at < high:
            total = _chunk_at(at, header, page)
            if total and at + total <= high:
                chunks.append((at, at + total))
                at = next_present(at + total, high)
            else:
                at = next_present(at + page, high)
    return sorted(chunks)


def _edges(low: int, high: int, present: list[Range], present_ends: list[int],
           header: Callable[[int], tuple[int, int] | None], page: int) -> list[Range]:
    """The chunks at the edges of [low, high): from its start while one follows another, then from its end down
    (each present page, highest first) while one ends where the last one found begins."""
    chunks: list[Range] = []
    at = low
    while at < high:
        index = bisect.bisect_right(present_ends, at)
        if index == len(present) or present[index][0] > at:
            break  # a chunk's first page is always present
        total = _chunk_at(at, header, page)
        if not total or at + total > high:
            break
        chunks.append((at, at + total))
        at += total
    limit = high
    index = bisect.bisect_left(present_ends, limit)
    index = min(index, len(present) - 1)
    while index >= 0 and present[index][1] > at:
        run_low, run_high = max(present[index][0], at), min(present[index][1], limit)
        page_at = (run_high - 1) // page * page
        while page_at >= run_low:
            total = _chunk_at(page_at, header, page)
            if total and page_at + total == limit:
                chunks.append((page_at, limit))
                limit = page_at
            page_at -= page
        index -= 1
    return chunks


# PAGEMAP_SCAN (Linux 6.7, include/uapi/linux/fs.h), as native/probe/snapshot.c uses it.
class _PageRegion(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("start", "end", "categories")]


class _ScanArg(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages", "category_inverted",
        "category_mask", "category_anyof_mask", "return_mask")]


_PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(_ScanArg) << 16) | (ord("f") << 8) | 16  # _IOWR('f', 16, ...)
_PAGE_IS_PRESENT = 1 << 3
_PAGE_IS_PFNZERO = 1 << 5
_SCAN_REGIONS = 512
_PM_PRESENT = 1 << 63
_PM_ENTRIES = 1 << 14  # pagemap entries per read where PAGEMAP_SCAN is missing (128 KiB)


class ChunkReader:
    """The present pages and chunk headers of this process, read through ``/proc/self/pagemap`` and
    ``/proc/self/mem``; the files and buffers are opened and made once (a snapshot allocates nothing that stays)."""

    def __init__(self) -> None:
        self._pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        self._mem = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
        self._regions = (_PageRegion * _SCAN_REGIONS)()
        self._arg = _ScanArg()
        self._header = (ctypes.c_uint64 * 2)()
        self._entry = (ctypes.c_uint64 * 1)()
        self._scan = True  # PAGEMAP_SCAN until the kernel refuses it
        self._entries: memoryview | None = None
        self._walked: list[Range] = []  # the parts the last search walked, and the chunks it found in them
        self._chunks: list[Range] = []
        self.failed_on: tuple[int, int] | None = None  # (hblks, hblkhd) a fresh walk did not add up to
        self.whole = False  # the mappings System.map names are walked whole (``search``)

    @property
    def walked_before(self) -> bool:
        """Whether a search has walked before (so the next may rely on it)."""
        return bool(self._walked)

    def close(self) -> None:
        os.close(self._pagemap)
        os.close(self._mem)

    def header(self, address: int) -> tuple[int, int] | None:
        """The chunk header at ``address`` (prev_size, size); None when the page is gone (unmapped meanwhile)."""
        try:
            if os.preadv(self._mem, [self._header], address) != 16:
                return None
        except OSError:
            return None
        return int(self._header[0]), int(self._header[1])

    def present(self, low: int, high: int) -> list[Range]:
        """The present pages of [low, high) (the shared zero page aside), as sorted ranges."""
        if self._scan:
            try:
                return self._present_scanned(low, high)
            except OSError as error:
                if error.errno not in (errno.ENOTTY, errno.EINVAL):
                    raise
                self._scan = False  # a kernel before 6.7: pagemap's entries instead
        return self._present_read(low, high)

    def _present_scanned(self, low: int, high: int) -> list[Range]:
        runs: list[Range] = []
        arg, regions = self._arg, self._regions
        while low < high:
            ctypes.memset(ctypes.addressof(arg), 0, ctypes.sizeof(arg))
            arg.size, arg.start, arg.end = ctypes.sizeof(arg), low, high
            arg.vec, arg.vec_len = ctypes.addressof(regions), _SCAN_REGIONS
            arg.category_inverted, arg.category_mask = _PAGE_IS_PFNZERO, _PAGE_IS_PRESENT | _PAGE_IS_PFNZERO
            arg.return_mask = _PAGE_IS_PRESENT
            found = fcntl.ioctl(self._pagemap, _PAGEMAP_SCAN, arg)
            runs.extend((int(regions[i].start), int(regions[i].end)) for i in range(found))
            if found < _SCAN_REGIONS or arg.walk_end <= low:
                break
            low = int(arg.walk_end)
        return runs

    def _present_read(self, low: int, high: int) -> list[Range]:
        if self._entries is None:
            self._entries = memoryview(bytearray(8 * _PM_ENTRIES)).cast("Q")
        entries = self._entries
        runs: list[Range] = []
        page = low // PAGE_BYTES
        last = high // PAGE_BYTES
        while page < last:
            count = min(_PM_ENTRIES, last - page)
            read = os.preadv(self._pagemap, [entries[:count]], page * 8) // 8
            for i in range(read):
                if entries[i] & _PM_PRESENT:
                    start = (page + i) * PAGE_BYTES
                    if runs and runs[-1][1] == start:
                        runs[-1] = (runs[-1][0], start + PAGE_BYTES)
                    else:
                        runs.append((start, start + PAGE_BYTES))
            if read < count:
                break
            page += count
        return runs

    def is_present(self, address: int) -> bool:
        """Whether the page at ``address`` is present (pagemap's entry)."""
        entry = self._entry
        try:
            read = os.preadv(self._pagemap, [entry], address // PAGE_BYTES * 8)
        except OSError:
            return False
        return read == 8 and bool(entry[0] & _PM_PRESENT)

    def find(self, parts: list[Range], fresh: bool = False, edges: frozenset[Range] = frozenset()) -> list[Range]:
        """The chunks in ``parts`` (see ``walk``). Unless ``fresh``, what the last search walked is not walked again:
        a chunk only appears where memory was mapped since, that is outside the ranges walked last time, or over a
        chunk found then; so each chunk found then is kept if its header is still there, and only the rest of
        ``parts`` is walked. (A chunk mapped where someone else's memory was unmapped since is missed: the search's
        check against hblkhd tells, and ``search`` walks afresh.)"""
        kept: list[Range] = []
        gone: list[Range] = []
        walked = [] if fresh else self._walked
        if walked:
            for low, high in self._chunks:
                inside = _inside(low, high, parts)
                if inside and self.is_present(low) and self.header(low) == (0, (high - low) | IS_MMAPPED):
                    kept.append((low, high))
                else:
                    gone.append((low, high))
        new = subtract(parts, subtract(walked, gone))
        present: list[Range] = []
        for low, high in new:
            present.extend(self.present(low, high))
        chunks = sorted(kept + walk(parts, present, self.header, edges=edges))
        self._walked, self._chunks = parts, chunks
        return chunks


def _inside(low: int, high: int, parts: list[Range]) -> bool:
    """Whether [low, high) lies inside one of ``parts`` (sorted)."""
    index = bisect.bisect_right(parts, (low, 1 << 64)) - 1
    return index >= 0 and parts[index][0] <= low and high <= parts[index][1]


def subtract(ranges: list[Range], away: list[Range]) -> list[Range]:
    """``ranges`` without ``away`` (both sorted, each without overlaps)."""
    left: list[Range] = []
    index = 0
    for low, high in ranges:
        at = low
        while index < len(away) and away[index][1] <= at:
            index += 1
        scan = index
        while scan < len(away) and away[scan][0] < high:
            if away[scan][0] > at:
                left.append((at, away[scan][0]))
            at = max(at, away[scan][1])
            scan += 1
        if at < high:
            left.append((at, high))
    return left


class Candidates(NamedTuple):
    """Where a search looks (``regions.glibc_chunk_candidates``): ``parts``, sorted page-aligned ranges; ``edges``,
    those System.map names (walked at their edges first); ``metadata``, of those, metaspace's and the class space's
    (only ever at their edges)."""

    parts: list[Range]
    edges: frozenset[Range] = frozenset()
    metadata: frozenset[Range] = frozenset()


# The search as the attribution calls it: the candidates, and how to get them afresh (``refresh``).
FindChunks = Callable[[Candidates, Callable[[], Candidates]], ChunkSearch]


def search(parts: list[Range], figures: Callable[[], tuple[int, int]], reader: ChunkReader,
           attempts: int = 4, edges: frozenset[Range] = frozenset(),
           refresh: Callable[[], Candidates] | None = None, metadata: frozenset[Range] = frozenset()) -> ChunkSearch:
    """The chunks in ``parts``, checked against glibc's own count and bytes (``figures``: mallinfo2's hblks and
    hblkhd), read before and after each walk. Walked again (up to ``attempts`` times) while they change meanwhile;
    afresh, once, when a walk that relied on the last one does not add up (unless a fresh walk already failed on the
    same figures: what it misses is outside ``parts``, and walking again would not find it). ``parts`` come from the
    snapshot's read of the mappings, a moment before: a chunk another thread mapped since is in none of them; so when
    a fresh walk still does not add up, ``refresh`` (the candidates from the mappings read again now) is walked once
    more (measured: 2 of 11 chunks mapped between the two reads, 1 run in ~20 of arrow-intvector under load). When
    that does not add up either, the mappings of ``edges`` are walked whole, but those of ``metadata`` (a chunk the
    kernel merged between two of the JVM's regions), once; a reader that needed it walks them whole from then on."""
    made = 0
    fresh = not reader.walked_before
    refreshed = widened = False
    whole = reader.whole
    while True:
        made += 1
        before = figures()
        ranges = reader.find(parts, fresh, metadata if whole else edges)
        after = figures()
        steady = before == after
        if steady and (len(ranges), sum(high - low for low, high in ranges)) == after \
                or made >= attempts + refreshed + widened:
            break
        if steady:
            if fresh and refresh is not None and not refreshed:
                parts, edges, metadata = refresh()
                refreshed = True
                continue
            if fresh and not whole and edges - metadata:
                whole = widened = True
                continue
            if fresh or reader.failed_on == after:
                break
            fresh = True
    hblks, hblkhd = after
    found_bytes = sum(high - low for low, high in ranges)
    exact = steady and len(ranges) == hblks and found_bytes == hblkhd
    if not exact and fresh and steady:
        reader.failed_on = after
    if exact and whole:
        reader.whole = True
    return ChunkSearch(GlibcChunks("found" if exact else "claimed", hblks, hblkhd, len(ranges), found_bytes,
                                   attempts=made, named_mappings="whole" if whole else "edges"), ranges)
