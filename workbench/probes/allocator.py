"""The malloc the process really has, found from its symbols, and that allocator's own statistics.

Each backend maps its figures onto the same six fields (see docs/allocators.md for what each means per allocator);
a field an allocator has no figure for is None. ``raw`` keeps the backend's own figures under their own names.

The allocators the workbench builds (jemalloc, tcmalloc, mimalloc: see ``toolchain/source_build.py``) also keep the
address ranges they have mapped (``workbench_mapped_ranges``, native/mapped-ranges/), so that what the kernel has
resident of exactly their pages can be read; the distributions' builds do not (``mapped_ranges()`` is None).
"""

from __future__ import annotations

import ctypes
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from workbench.probes import glibc_chunks


@dataclass(frozen=True)
class ConfSetting:
    """One pair of MALLOC_CONF: what was asked, and the ``opt.*`` value jemalloc says it uses (None: jemalloc does not
    report that option, e.g. an alias such as ``lg_tcache_max``)."""

    key: str
    asked: str
    effective: bool | int | float | str | None


@dataclass(frozen=True)
class AllocatorInfo:
    """Which allocator answers malloc in this process, and how it was built."""

    backend: str  # "jemalloc", "tcmalloc", "mimalloc", "glibc", or "unknown"
    library: str | None  # the file the process's `malloc` symbol lives in
    version: str | None
    config_prof: bool | None
    config_stats: bool | None
    settings: list[ConfSetting] | None = None  # MALLOC_CONF read back (jemalloc); None: no conf, or not jemalloc


@dataclass(frozen=True)
class AllocatorSnapshot:
    """The allocator's statistics; a field the backend has no figure for is None."""

    backend: str
    allocated_bytes: int | None
    active_bytes: int | None
    metadata_bytes: int | None
    resident_bytes: int | None
    mapped_bytes: int | None
    retained_bytes: int | None
    raw: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SizeClass:
    """A size class with live allocations: a small bin's regions or a large size's extents, all arenas merged."""

    kind: Literal["small", "large"]
    size_bytes: int
    count: int  # live regions (small) or extents (large)
    bytes: int  # count * size_bytes
    # Small bins of jemalloc: the slabs the regions live in and how many regions a slab has; the regions the slabs
    # could hold beyond ``count`` are free space inside the allocator's active pages. None: not known.
    slabs: int | None = None
    regions_per_slab: int | None = None

    @property
    def free_bytes(self) -> int | None:
        """The free regions' bytes in this class's slabs (fragmentation); None when the slabs are not known."""
        if self.slabs is None or self.regions_per_slab is None:
            return None
        return (self.slabs * self.regions_per_slab - self.count) * self.size_bytes


def jemalloc_size_classes(stats_json: str) -> list[SizeClass] | None:
    """Every live size class, most bytes first, from ``malloc_stats_print``'s JSON (option ``J``); None when the
    JSON lacks merged arena statistics (bins and large extents)."""
    try:
        jemalloc = json.loads(stats_json)["jemalloc"]
        merged = jemalloc["stats.arenas"]["merged"]
        bins = jemalloc["arenas"]["bin"]
        lextent_sizes = [int(entry["size"]) for entry in jemalloc["arenas"]["lextent"]]
        small = [SizeClass("small", int(bins[i]["size"]), int(b["curregs"]), int(b["curregs"]) * int(bins[i]["size"]),
                           _int_or_none(b.get("curslabs")), _int_or_none(bins[i].get("nregs")))
                 for i, b in enumerate(merged["bins"])]
        large = [SizeClass("large", lextent_sizes[i], int(e["curlextents"]), int(e["curlextents"]) * lextent_sizes[i])
                 for i, e in enumerate(merged["lextents"])]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return _live(small + large)


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def _live(classes: list[SizeClass]) -> list[SizeClass]:
    return sorted((c for c in classes if c.bytes > 0), key=lambda c: c.bytes, reverse=True)


def size_classes(raw: tuple[str, str] | None) -> list[SizeClass] | None:
    """The live size classes in jemalloc's ``raw_statistics()``; None for other formats (a backend's own
    ``size_classes`` covers the others)."""
    if raw is None or raw[0] != "json":
        return None
    return jemalloc_size_classes(raw[1])


class _MappedRanges:
    """The address ranges a workbench-built allocator has mapped, read from its ``workbench_mapped_ranges``."""

    ROOM = 16384  # WORKBENCH_RANGES_MAX in native/mapped-ranges/workbench_ranges.h: one call always has room

    def __init__(self, library: ctypes.CDLL) -> None:
        self._read: Any = None
        # jemalloc's build prefixes every symbol it does not know as public with je_.
        for name in ("workbench_mapped_ranges", "je_workbench_mapped_ranges"):
            try:
                self._read = getattr(library, name)
            except AttributeError:
                continue
            self._read.restype = ctypes.c_long
            self._read.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            break
        # Allocated once: a buffer per call would go through the allocator being measured.
        self._pairs = (ctypes.c_uint64 * (2 * self.ROOM))() if self._read is not None else None

    def read(self) -> list[tuple[int, int]] | None:
        """The ranges, sorted; None when the allocator does not record them or its table overflowed."""
        if self._read is None or self._pairs is None:
            return None
        count = int(self._read(ctypes.addressof(self._pairs), self.ROOM))
        if count < 0 or count > self.ROOM:
            return None
        pairs = self._pairs
        return sorted((int(pairs[2 * i]), int(pairs[2 * i + 1])) for i in range(count))


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")
    ]


class Backend(Protocol):
    info: AllocatorInfo

    def snapshot(self) -> AllocatorSnapshot: ...

    def raw_statistics(self) -> tuple[str, str] | None:
        """The allocator's full statistics in its own format: (file extension, text)."""
        ...

    def size_classes(self, raw: tuple[str, str] | None) -> list[SizeClass] | None:
        """The live size classes, from ``raw`` (what ``raw_statistics()`` returned) or the allocator itself; None
        where the allocator does not give them."""
        ...

    def mapped_ranges(self) -> list[tuple[int, int]] | None:
        """The address ranges the allocator has mapped, (start, end) sorted; None where it does not record them."""
        ...


_WRITE_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_MI_OUTPUT = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)


def _library_of(process: ctypes.CDLL, symbol: str) -> str | None:
    """The shared object the process's global `symbol` resolves to (what the dynamic linker chose)."""
    address = ctypes.cast(getattr(process, symbol), ctypes.c_void_p)
    info = _DlInfo()
    if process.dladdr(address, ctypes.byref(info)) == 0 or not info.dli_fname:
        return None
    return str(info.dli_fname.decode())


class JemallocBackend:
    """jemalloc through ``mallctl``: write ``epoch`` to refresh, then read ``stats.*``."""

    STATS = ("allocated", "active", "metadata", "resident", "mapped", "retained")
    # A snapshot's keys, and their C types, in the order the probe library's workbench_jemalloc_figures reads them.
    FIGURES: tuple[tuple[str, type[ctypes._SimpleCData[int]]], ...] = (
        *((f"stats.{name}", ctypes.c_size_t) for name in STATS),
        ("arenas.narenas", ctypes.c_uint),
        # All arenas merged (MALLCTL_ARENAS_ALL): freed pages kept for reuse, and what the threads' caches hold.
        *((f"stats.arenas.4096.{name}", ctypes.c_size_t) for name in ("pdirty", "pmuzzy", "tcache_bytes", "base",
                                                                        "internal")),
        ("opt.dirty_decay_ms", ctypes.c_ssize_t),
    )

    def __init__(self, library: ctypes.CDLL, path: str | None) -> None:
        self._mallctl = library.mallctl
        self._mallctl.restype = ctypes.c_int
        self._mallctl.argtypes = [
            ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.c_size_t,
        ]
        # The figures read in one call of the probe library when it is loaded (read_figures_with), else from here.
        self._figures: Callable[[], dict[str, int] | None] = self._read_figures
        self._stats_print = library.malloc_stats_print
        self._stats_print.argtypes = [_WRITE_CALLBACK, ctypes.c_void_p, ctypes.c_char_p]
        self._stats_print.restype = None
        self._ranges = _MappedRanges(library)
        self._own_arena: int | None = None  # the workbench's own arena, once made
        page = ctypes.c_size_t()
        self._page = int(page.value) if self._read("arenas.page", page) else 4096
        version = ctypes.c_char_p()
        self.info = AllocatorInfo(
            backend="jemalloc",
            library=path,
            version=version.value.decode() if self._read("version", version) and version.value else None,
            config_prof=self._read_bool("config.prof"),
            config_stats=self._read_bool("config.stats"),
        )

    def _read(self, name: str, value: Any) -> bool:
        size = ctypes.c_size_t(ctypes.sizeof(value))
        return bool(self._mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0) == 0)

    def use_own_arena(self) -> int | None:
        """This thread allocates from an arena of the workbench's own (made once, ``arenas.create``; jemalloc never
        gives a manually made arena to another thread) until ``use_arena(previous)``; the arena it used before, None
        when jemalloc refused. Freed memory goes back to the arena it came from, so the program's arenas see none of
        the workbench's calls: their dirty-page decay is ticked by the program alone."""
        if self._own_arena is None:
            created = ctypes.c_uint()
            if not self._read("arenas.create", created):
                return None
            self._own_arena = int(created.value)
            # Its pages are never purged (decay -1, this arena only): the program's arenas keep their own decay, and
            # a snapshot never faults in again the pages a purge of the last one's took (±60-300 KiB a step).
            for decay in ("dirty_decay_ms", "muzzy_decay_ms"):
                never = ctypes.c_ssize_t(-1)
                self._mallctl(f"arena.{self._own_arena}.{decay}".encode(), None, None, ctypes.byref(never),
                              ctypes.sizeof(never))
        return self.use_arena(self._own_arena)

    def use_arena(self, index: int) -> int | None:
        """This thread's arena set to ``index``; the one before, None when jemalloc refused."""
        old, new = ctypes.c_uint(), ctypes.c_uint(index)
        size = ctypes.c_size_t(ctypes.sizeof(old))
        if self._mallctl(b"thread.arena", ctypes.byref(old), ctypes.byref(size), ctypes.byref(new),
                         ctypes.sizeof(new)) != 0:
            return None
        return int(old.value)

    def _read_bool(self, name: str) -> bool | None:
        value = ctypes.c_bool()
        return bool(value.value) if self._read(name, value) else None

    def _read_size(self, name: str) -> int | None:
        value = ctypes.c_size_t()
        return int(value.value) if self._read(name, value) else None

    def read_figures_with(self, figures: Callable[[], dict[str, int] | None]) -> None:
        """Read a snapshot's figures (``FIGURES``: key -> value, a key jemalloc did not answer left out) with
        ``figures``: the probe library's one call instead of fourteen through ctypes (~0.1 ms less a sample)."""
        self._figures = figures

    def _read_figures(self) -> dict[str, int] | None:
        epoch = ctypes.c_uint64(1)
        self._mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
        figures = {}
        for key, kind in self.FIGURES:
            value = kind()
            if self._read(key, value):
                figures[key] = int(value.value)
        return figures

    def snapshot(self) -> AllocatorSnapshot:
        figures = self._figures() or {}
        stats = {f"{name}_bytes": figures.get(f"stats.{name}") for name in self.STATS}
        raw: dict[str, Any] = {"narenas": figures["arenas.narenas"]} if "arenas.narenas" in figures else {}
        # Of those, the workbench's own (its sampler's and snapshots' allocations: use_own_arena).
        raw["workbench_arenas"] = 0 if self._own_arena is None else 1
        for name, key in (("pdirty", "dirty_bytes"), ("pmuzzy", "muzzy_bytes")):
            pages = figures.get(f"stats.arenas.4096.{name}")
            if pages is not None:
                raw[key] = pages * self._page
        for name in ("tcache_bytes", "base", "internal"):
            value = figures.get(f"stats.arenas.4096.{name}")
            if value is not None:
                raw[name if name.endswith("_bytes") else f"{name}_bytes"] = value
        if "opt.dirty_decay_ms" in figures:
            raw["dirty_decay_ms"] = figures["opt.dirty_decay_ms"]
        return AllocatorSnapshot(backend="jemalloc", **stats, raw=raw)

    def size_classes(self, raw: tuple[str, str] | None) -> list[SizeClass] | None:
        return size_classes(raw)

    def mapped_ranges(self) -> list[tuple[int, int]] | None:
        return self._ranges.read()

    def options(self) -> dict[str, Any]:
        """Every ``opt.*`` jemalloc reports, typed, from ``malloc_stats_print``'s JSON without the statistics."""
        chunks: list[bytes] = []
        callback = _WRITE_CALLBACK(lambda _opaque, text: chunks.append(text or b""))
        self._stats_print(callback, None, b"Jmdablxeh")
        try:
            options = json.loads(b"".join(chunks))["jemalloc"]["opt"]
        except (ValueError, KeyError, TypeError):
            return {}
        return options if isinstance(options, dict) else {}

    def raw_statistics(self) -> tuple[str, str] | None:
        """``malloc_stats_print`` with option ``J``: every arena, bin and extent as JSON."""
        chunks: list[bytes] = []
        callback = _WRITE_CALLBACK(lambda _opaque, text: chunks.append(text or b""))
        self._stats_print(callback, None, b"J")
        return "json", b"".join(chunks).decode(errors="replace")


class TcmallocBackend:
    """gperftools' tcmalloc through ``MallocExtension_GetNumericProperty``; a workbench build (``workbench build
    tcmalloc``) also keeps the ranges it obtained from the system."""

    PROPERTIES = (
        "generic.current_allocated_bytes", "generic.heap_size", "generic.total_physical_bytes",
        "tcmalloc.pageheap_free_bytes", "tcmalloc.pageheap_unmapped_bytes", "tcmalloc.central_cache_free_bytes",
        "tcmalloc.transfer_cache_free_bytes", "tcmalloc.thread_cache_free_bytes",
    )

    def __init__(self, library: ctypes.CDLL, path: str | None) -> None:
        self._get = library.MallocExtension_GetNumericProperty
        self._get.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)]
        self._get.restype = ctypes.c_int
        version = None
        if hasattr(library, "tc_version"):
            library.tc_version.restype = ctypes.c_char_p
            library.tc_version.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            version = library.tc_version(None, None, None).decode()
        self.info = AllocatorInfo("tcmalloc", path, version, None, None)
        self._get_stats = library.MallocExtension_GetStats
        self._get_stats.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._get_stats.restype = None
        self._ranges = _MappedRanges(library)

    def raw_statistics(self) -> tuple[str, str] | None:
        """``MallocExtension_GetStats``: the page heap, caches and size classes as text."""
        buffer = ctypes.create_string_buffer(1 << 20)
        self._get_stats(buffer, len(buffer))
        return "txt", buffer.value.decode(errors="replace")

    def size_classes(self, raw: tuple[str, str] | None) -> list[SizeClass] | None:
        return None

    def mapped_ranges(self) -> list[tuple[int, int]] | None:
        return self._ranges.read()

    def snapshot(self) -> AllocatorSnapshot:
        raw = {}
        for name in self.PROPERTIES:
            value = ctypes.c_size_t()
            if self._get(name.encode(), ctypes.byref(value)):
                raw[name] = int(value.value)
        heap = raw.get("generic.heap_size")
        free = raw.get("tcmalloc.pageheap_free_bytes")
        unmapped = raw.get("tcmalloc.pageheap_unmapped_bytes")
        return AllocatorSnapshot(
            backend="tcmalloc",
            allocated_bytes=raw.get("generic.current_allocated_bytes"),
            # Spans handed out of the page heap: allocated plus what sits in the central/transfer/thread caches.
            active_bytes=heap - free - unmapped if None not in (heap, free, unmapped) else None,  # type: ignore[operator]
            metadata_bytes=None,
            resident_bytes=raw.get("generic.total_physical_bytes"),
            mapped_bytes=heap - unmapped if heap is not None and unmapped is not None else None,
            retained_bytes=unmapped,
            raw=raw,
        )


class _MiStatCount(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in ("allocated", "freed", "peak", "current")]


class _MiStatCounter(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in ("total", "count")]


_MI_COUNTS = ("segments", "pages", "reserved", "committed", "reset", "page_committed", "segments_abandoned",
              "pages_abandoned", "threads", "normal", "huge", "large", "malloc", "segments_cache")
_MI_COUNTERS = ("pages_extended", "mmap_calls", "commit_calls", "page_no_retire", "searches", "normal_count",
                "huge_count", "large_count")
_MI_BIN_HUGE = 73  # mimalloc 2.0's MI_BIN_HUGE: normal_bins has 74 entries


class _MiStats(ctypes.Structure):
    """mimalloc 2.0's ``mi_stats_t`` built with ``MI_STAT=2``; checked against the library's own sizeof."""

    _fields_ = ([(name, _MiStatCount) for name in _MI_COUNTS] + [(name, _MiStatCounter) for name in _MI_COUNTERS]
                + [("normal_bins", _MiStatCount * (_MI_BIN_HUGE + 1))])


class MimallocBackend:
    """mimalloc through ``mi_process_info``; a workbench build (``workbench build mimalloc``: ``MI_STAT=2``, every
    thread's statistics kept in the process's at once) is also read in place through ``workbench_mi_stats``."""

    def __init__(self, library: ctypes.CDLL, path: str | None) -> None:
        self._process_info = library.mi_process_info
        self._process_info.argtypes = [ctypes.POINTER(ctypes.c_size_t)] * 8
        self._process_info.restype = None
        library.mi_version.restype = ctypes.c_int
        number = int(library.mi_version())
        self._stats_print = library.mi_stats_print_out
        self._stats_print.argtypes = [_MI_OUTPUT, ctypes.c_void_p]
        self._stats_print.restype = None
        self._ranges = _MappedRanges(library)
        self._stats: _MiStats | None = None
        self._bin_sizes: list[int] = []
        if hasattr(library, "workbench_mi_stats"):
            library.workbench_mi_stats.restype = ctypes.c_void_p
            library.workbench_mi_stats.argtypes = [ctypes.POINTER(ctypes.c_size_t)] * 2
            size, bin_huge = ctypes.c_size_t(), ctypes.c_size_t()
            address = library.workbench_mi_stats(ctypes.byref(size), ctypes.byref(bin_huge))
            if address and size.value == ctypes.sizeof(_MiStats) and bin_huge.value == _MI_BIN_HUGE:
                self._stats = _MiStats.from_address(address)
                library.workbench_mi_bin_size.restype = ctypes.c_size_t
                library.workbench_mi_bin_size.argtypes = [ctypes.c_size_t]
                self._bin_sizes = [int(library.workbench_mi_bin_size(i)) for i in range(_MI_BIN_HUGE + 1)]
        self.info = AllocatorInfo("mimalloc", path, f"{number // 100}.{number // 10 % 10}.{number % 10}", None,
                                  self._stats is not None)

    def raw_statistics(self) -> tuple[str, str] | None:
        """``mi_stats_print_out``: mimalloc's statistics table as text."""
        chunks: list[bytes] = []
        callback = _MI_OUTPUT(lambda text, _arg: chunks.append(text or b""))
        self._stats_print(callback, None)
        return "txt", b"".join(chunks).decode(errors="replace")

    def snapshot(self) -> AllocatorSnapshot:
        values = [ctypes.c_size_t() for _ in range(8)]
        self._process_info(*[ctypes.byref(v) for v in values])
        names = ("elapsed_msecs", "user_msecs", "system_msecs", "current_rss", "peak_rss", "current_commit",
                 "peak_commit", "page_faults")
        raw = {name: int(v.value) for name, v in zip(names, values)}
        stats = self._stats
        if stats is None:  # a build without statistics: only what it has committed
            return AllocatorSnapshot(
                backend="mimalloc", allocated_bytes=None, active_bytes=None, metadata_bytes=None,
                resident_bytes=None, mapped_bytes=raw["current_commit"], retained_bytes=None, raw=raw,
            )
        current = {name: int(getattr(stats, name).current) for name in _MI_COUNTS}
        raw.update({f"{name}_bytes": current[name] for name in ("normal", "large", "huge", "malloc", "reserved",
                                                                "committed", "reset", "page_committed")})
        raw.update({name: current[name] for name in ("segments", "pages", "threads", "segments_cache")})
        return AllocatorSnapshot(
            backend="mimalloc",
            # The live blocks at their block sizes (like jemalloc's allocated: requests rounded to their class).
            allocated_bytes=current["normal"] + current["large"] + current["huge"],
            # What its pages have made available to blocks ("touched" in mimalloc's table).
            active_bytes=current["page_committed"],
            metadata_bytes=None,
            resident_bytes=None,  # mimalloc has no figure of its own for it: the kernel's comes by address
            mapped_bytes=current["committed"],
            retained_bytes=current["reserved"] - current["committed"],
            raw=raw,
        )

    def size_classes(self, raw: tuple[str, str] | None) -> list[SizeClass] | None:
        """Every normal bin with live blocks (mimalloc counts blocks per bin, not large or huge ones)."""
        stats = self._stats
        if stats is None:
            return None
        return _live([SizeClass("small", size, int(stats.normal_bins[i].current),
                                int(stats.normal_bins[i].current) * size)
                      for i, size in enumerate(self._bin_sizes)])

    def mapped_ranges(self) -> list[tuple[int, int]] | None:
        return self._ranges.read()


class GlibcBackend:
    """glibc's ptmalloc through ``mallinfo2``, and the arena count from ``malloc_info``; its mmapped chunks by their
    headers (``mmapped_chunks``)."""

    def __init__(self, process: ctypes.CDLL, path: str | None) -> None:
        self._process = process
        self._mallinfo2 = process.mallinfo2
        self._mallinfo2.restype = _MallInfo2
        self._mallinfo2.argtypes = []
        self._chunk_reader: glibc_chunks.ChunkReader | None = None  # opened at the first search
        process.gnu_get_libc_version.restype = ctypes.c_char_p
        self.info = AllocatorInfo("glibc", path, process.gnu_get_libc_version().decode(), None, None)

    def _malloc_info(self) -> str | None:
        process = self._process
        process.open_memstream.restype = ctypes.c_void_p
        process.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
        process.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        process.fclose.argtypes = [ctypes.c_void_p]
        buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = process.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
        if not stream:
            return None
        process.malloc_info(0, stream)
        process.fclose(stream)
        xml = ctypes.string_at(buffer, size.value).decode(errors="replace")
        process.free.argtypes = [ctypes.c_void_p]
        process.free(ctypes.cast(buffer, ctypes.c_void_p))
        return xml

    def raw_statistics(self) -> tuple[str, str] | None:
        """``malloc_info``: every arena's free lists as XML."""
        xml = self._malloc_info()
        return ("xml", xml) if xml is not None else None

    def size_classes(self, raw: tuple[str, str] | None) -> list[SizeClass] | None:
        return None

    def mapped_ranges(self) -> list[tuple[int, int]] | None:
        return None

    def mmapped_chunks(self, candidates: glibc_chunks.Candidates,
                       refresh: Callable[[], glibc_chunks.Candidates] | None = None,
                       ) -> glibc_chunks.ChunkSearch:
        """glibc's mmapped chunks in ``candidates`` (``regions.glibc_chunk_candidates``), found by their headers and
        checked against mallinfo2's hblks and hblkhd (``glibc_chunks.search``)."""
        if self._chunk_reader is None:
            self._chunk_reader = glibc_chunks.ChunkReader()
        return glibc_chunks.search(candidates.parts, self._mmapped_figures, self._chunk_reader,
                                   edges=candidates.edges, refresh=refresh, metadata=candidates.metadata)

    def _mmapped_figures(self) -> tuple[int, int]:
        info = self._mallinfo2()
        return int(info.hblks), int(info.hblkhd)

    def snapshot(self) -> AllocatorSnapshot:
        info = self._mallinfo2()
        raw = {field[0]: int(getattr(info, field[0])) for field in _MallInfo2._fields_}
        xml = self._malloc_info()
        if xml is not None:
            raw["arenas"] = len(re.findall(r"<heap nr=", xml))
        # In use = small chunks in arenas + mmapped chunks; obtained from the system = arenas + mmapped chunks.
        return AllocatorSnapshot(
            backend="glibc",
            allocated_bytes=info.uordblks + info.hblkhd,
            active_bytes=None,
            metadata_bytes=None,
            resident_bytes=None,
            mapped_bytes=info.arena + info.hblkhd,
            retained_bytes=None,
            raw=raw,
        )


class UnknownBackend:
    def __init__(self, path: str | None) -> None:
        self.info = AllocatorInfo("unknown", path, None, None, None)

    def snapshot(self) -> AllocatorSnapshot:
        return AllocatorSnapshot("unknown", None, None, None, None, None, None)

    def raw_statistics(self) -> tuple[str, str] | None:
        return None

    def size_classes(self, raw: tuple[str, str] | None) -> list[SizeClass] | None:
        return None

    def mapped_ranges(self) -> list[tuple[int, int]] | None:
        return None


def conf_settings(backend: Backend, malloc_conf: str | None) -> list[ConfSetting] | None:
    """Each pair of ``malloc_conf`` with the value jemalloc in this process says it uses; None without a conf or
    without jemalloc."""
    if not malloc_conf or not isinstance(backend, JemallocBackend):
        return None
    options = backend.options()
    pairs = [(key.strip(), value.strip()) for key, _, value in
             (pair.partition(":") for pair in malloc_conf.split(",") if pair.strip())]
    return [ConfSetting(key, value, options.get(key)) for key, value in pairs]


def enter_own_arena(backend: Backend) -> int | None:
    """jemalloc: this thread's allocations go to the workbench's own arena (see ``JemallocBackend.use_own_arena``);
    the arena to go back to with ``leave_own_arena``; None for other allocators (they have no such control)."""
    return backend.use_own_arena() if isinstance(backend, JemallocBackend) else None


def leave_own_arena(backend: Backend, previous: int | None) -> None:
    """Back to the arena ``enter_own_arena`` returned."""
    if previous is not None and isinstance(backend, JemallocBackend):
        backend.use_arena(previous)


def chunk_finder(backend: Backend) -> glibc_chunks.FindChunks | None:
    """glibc: the search for its mmapped chunks by their headers (``GlibcBackend.mmapped_chunks``); None for the
    other allocators (their mappings are recorded, or not found)."""
    return backend.mmapped_chunks if isinstance(backend, GlibcBackend) else None


def detect() -> Backend:
    """The backend for the library the process's ``malloc`` really resolves to, judged by what that library exports."""
    process = ctypes.CDLL(None)
    path = _library_of(process, "malloc")
    library = ctypes.CDLL(path) if path else process
    if hasattr(library, "mallctl"):
        return JemallocBackend(library, path)
    if hasattr(library, "MallocExtension_GetNumericProperty"):
        return TcmallocBackend(library, path)
    if hasattr(library, "mi_process_info"):
        return MimallocBackend(library, path)
    if hasattr(library, "mallinfo2") and path is not None and "libc.so" in path:
        return GlibcBackend(process, path)
    return UnknownBackend(path)
