"""The malloc the process really has, found from its symbols, and that allocator's own statistics.

Each backend maps its figures onto the same six fields (see the README for what each means per allocator); a
field an allocator has no figure for is None. ``raw`` keeps the backend's own figures under their own names.
"""

from __future__ import annotations

import ctypes
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


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


def jemalloc_size_classes(stats_json: str) -> list[SizeClass] | None:
    """Every live size class, most bytes first, from ``malloc_stats_print``'s JSON (option ``J``); None when the
    JSON lacks merged arena statistics (bins and large extents)."""
    try:
        jemalloc = json.loads(stats_json)["jemalloc"]
        merged = jemalloc["stats.arenas"]["merged"]
        bin_sizes = [int(entry["size"]) for entry in jemalloc["arenas"]["bin"]]
        lextent_sizes = [int(entry["size"]) for entry in jemalloc["arenas"]["lextent"]]
        small = [SizeClass("small", bin_sizes[i], int(b["curregs"]), int(b["curregs"]) * bin_sizes[i])
                 for i, b in enumerate(merged["bins"])]
        large = [SizeClass("large", lextent_sizes[i], int(e["curlextents"]), int(e["curlextents"]) * lextent_sizes[i])
                 for i, e in enumerate(merged["lextents"])]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return sorted((c for c in small + large if c.bytes > 0), key=lambda c: c.bytes, reverse=True)


def size_classes(raw: tuple[str, str] | None) -> list[SizeClass] | None:
    """The live size classes in a backend's ``raw_statistics()``; None where the allocator does not give them
    (only jemalloc's JSON has them)."""
    if raw is None or raw[0] != "json":
        return None
    return jemalloc_size_classes(raw[1])


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

    def __init__(self, library: ctypes.CDLL, path: str | None) -> None:
        self._mallctl = library.mallctl
        self._mallctl.restype = ctypes.c_int
        self._mallctl.argtypes = [
            ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.c_size_t,
        ]
        self._stats_print = library.malloc_stats_print
        self._stats_print.argtypes = [_WRITE_CALLBACK, ctypes.c_void_p, ctypes.c_char_p]
        self._stats_print.restype = None
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

    def _read_bool(self, name: str) -> bool | None:
        value = ctypes.c_bool()
        return bool(value.value) if self._read(name, value) else None

    def _read_size(self, name: str) -> int | None:
        value = ctypes.c_size_t()
        return int(value.value) if self._read(name, value) else None

    def snapshot(self) -> AllocatorSnapshot:
        epoch = ctypes.c_uint64(1)
        self._mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
        stats = {name: self._read_size(f"stats.{name}") for name in self.STATS}
        narenas = ctypes.c_uint()
        raw = {"narenas": int(narenas.value)} if self._read("arenas.narenas", narenas) else {}
        return AllocatorSnapshot(backend="jemalloc", **{f"{k}_bytes": v for k, v in stats.items()}, raw=raw)

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
    """gperftools' tcmalloc through ``MallocExtension_GetNumericProperty``."""

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

    def raw_statistics(self) -> tuple[str, str] | None:
        """``MallocExtension_GetStats``: the page heap, caches and size classes as text."""
        buffer = ctypes.create_string_buffer(1 << 20)
        self._get_stats(buffer, len(buffer))
        return "txt", buffer.value.decode(errors="replace")

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


class MimallocBackend:
    """mimalloc through ``mi_process_info``: it reports what it has committed; per-object totals need a stats build."""

    def __init__(self, library: ctypes.CDLL, path: str | None) -> None:
        self._process_info = library.mi_process_info
        self._process_info.argtypes = [ctypes.POINTER(ctypes.c_size_t)] * 8
        self._process_info.restype = None
        library.mi_version.restype = ctypes.c_int
        number = int(library.mi_version())
        self.info = AllocatorInfo("mimalloc", path, f"{number // 100}.{number // 10 % 10}.{number % 10}", None, None)
        self._stats_print = library.mi_stats_print_out
        self._stats_print.argtypes = [_MI_OUTPUT, ctypes.c_void_p]
        self._stats_print.restype = None

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
        return AllocatorSnapshot(
            backend="mimalloc", allocated_bytes=None, active_bytes=None, metadata_bytes=None, resident_bytes=None,
            mapped_bytes=raw["current_commit"], retained_bytes=None, raw=raw,
        )


class GlibcBackend:
    """glibc's ptmalloc through ``mallinfo2``, and the arena count from ``malloc_info``."""

    def __init__(self, process: ctypes.CDLL, path: str | None) -> None:
        self._process = process
        self._mallinfo2 = process.mallinfo2
        self._mallinfo2.restype = _MallInfo2
        self._mallinfo2.argtypes = []
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


def conf_settings(backend: Backend, malloc_conf: str | None) -> list[ConfSetting] | None:
    """Each pair of ``malloc_conf`` with the value jemalloc in this process says it uses; None without a conf or
    without jemalloc."""
    if not malloc_conf or not isinstance(backend, JemallocBackend):
        return None
    options = backend.options()
    pairs = [(key.strip(), value.strip()) for key, _, value in
             (pair.partition(":") for pair in malloc_conf.split(",") if pair.strip())]
    return [ConfSetting(key, value, options.get(key)) for key, value in pairs]


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
