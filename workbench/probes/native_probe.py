"""Clients of libworkbench-probe.so (native/probe): the allocator probe preloaded into a process we did not start,
and the same library loaded into the worker as its snapshot reader.

Preloaded, the probe serves ``$WORKBENCH_PROBE_DIR/probe-<pid>.sock`` (default ``$XDG_RUNTIME_DIR/workbench``, else
``/tmp/workbench-<uid>``): one command line in, one JSON line out. ``stats`` answers the fields of
:class:`workbench.probes.allocator.AllocatorSnapshot` plus ``pid``, ``version``, ``library`` and ``t_ns``; ``dump``
writes the allocator's full statistics and answers ``{"dump": path}``; ``ping`` answers ``{"pid": N}``.

Loaded with ``WORKBENCH_PROBE_SERVE=0`` (:class:`SnapshotLibrary`), it serves nothing and answers its caller
directly (native/probe/snapshot.h): the mappings with their Rss and Anonymous, the threads' stack pointers,
pymalloc's pools, the allocator's full statistics written straight into a file and jemalloc's size classes, all
read into buffers it maps once, none of it through malloc.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from workbench.probes._socket import ask, socket_dir
from workbench.probes.allocator import AllocatorSnapshot, JemallocBackend, SizeClass
from workbench.probes.process import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # pydantic: imported where a reply is read, not before `exec` has started its program
    from workbench.protocol.replies import ProbeStats

COMMANDS = ("stats", "dump", "ping")
_MAX_ANSWER = 1 << 20


class ProbeUnavailable(Exception):
    """No probe answers for that process: no socket, refused, closed without answering, or timed out."""


def probe_dir() -> Path:
    """Where probes put their sockets; the same rule as the C side (native/probe/probe.h)."""
    return socket_dir()


def socket_path(pid: int, directory: Path | None = None) -> Path:
    """The socket of the probe in process ``pid``."""
    return (directory or probe_dir()) / f"probe-{pid}.sock"


def query(pid: int, command: str = "stats", timeout: float = 2.0, directory: Path | None = None) -> dict[str, Any]:
    """Sends one command to the probe in process ``pid`` and returns its JSON answer.

    An unknown command is answered ``{"error": "unknown command"}`` (returned, not raised). Raises ProbeUnavailable
    when there is no socket, the connection is refused or closed without an answer (another user's probe), or no
    answer comes within ``timeout`` seconds.
    """
    if "\n" in command or "\r" in command:
        raise ValueError(f"a probe command is one line: {command!r}")
    path = socket_path(pid, directory)
    try:
        data = ask(path, command, timeout, _MAX_ANSWER)
    except FileNotFoundError:
        raise ProbeUnavailable(f"no allocator probe in process {pid}: {path} does not exist (is "
                               f"libworkbench-probe.so in its LD_PRELOAD?)") from None
    except TimeoutError:
        raise ProbeUnavailable(f"the allocator probe of process {pid} did not answer within {timeout} s") from None
    except OSError as error:
        raise ProbeUnavailable(f"cannot talk to the allocator probe of process {pid} at {path}: "
                               f"{error.strerror or error}") from None
    if not data.endswith(b"\n"):
        raise ProbeUnavailable(f"the allocator probe of process {pid} closed the connection without an answer "
                               f"(a probe serves only its own user)")
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ProbeUnavailable(f"the allocator probe of process {pid} answered {data[:80]!r}, not a JSON object")
    return answer


def snapshot_from_stats(stats: ProbeStats) -> AllocatorSnapshot:
    """The probe's ``stats`` answer as the snapshot the in-process backends produce."""
    return AllocatorSnapshot(
        backend=stats.backend, allocated_bytes=stats.allocated_bytes, active_bytes=stats.active_bytes,
        metadata_bytes=stats.metadata_bytes, resident_bytes=stats.resident_bytes, mapped_bytes=stats.mapped_bytes,
        retained_bytes=stats.retained_bytes, raw=dict(stats.raw),
    )


def snapshot_from_probe(data: dict[str, Any]) -> AllocatorSnapshot:
    """The probe's ``stats`` answer (JSON) as an allocator snapshot; BadReply when it is not a stats answer."""
    from workbench.protocol.replies import probe_stats

    return snapshot_from_stats(probe_stats(data))


# --- the library in this process (native/probe/snapshot.h) -----------------------------------------------------

ProcessSource = Literal["pagemap-scan", "smaps"]
_MODES: dict[str, int] = {"auto": 0, "pagemap-scan": 1, "smaps": 2}
_SOURCES: dict[int, ProcessSource] = {1: "pagemap-scan", 2: "smaps"}
_MAPPINGS_MAX = 65536  # WB_MAPPINGS_MAX
_POOL_BYTES = 8 << 20  # POOL_BYTES in snapshot.c
_STACKS_MAX = 4096
_SIZE_CLASSES_MAX = 1024
_MAPPING = struct.Struct("<4Q4I4si")  # struct wb_mapping


class _Process(ctypes.Structure):
    _fields_ = [("rss_bytes", ctypes.c_uint64), ("anon_rss_bytes", ctypes.c_uint64),
                ("buffers_start", ctypes.c_uint64), ("buffers_end", ctypes.c_uint64),
                ("buffers_anon_bytes", ctypes.c_uint64), ("mappings", ctypes.c_uint32),
                ("source", ctypes.c_int32), ("raw_errno", ctypes.c_int32), ("generation", ctypes.c_uint32),
                ("previous_generation", ctypes.c_uint32), ("unused", ctypes.c_uint32)]


class _SizeClass(ctypes.Structure):
    _fields_ = [("size_bytes", ctypes.c_uint64), ("count", ctypes.c_uint64), ("slabs", ctypes.c_uint64),
                ("regions_per_slab", ctypes.c_uint32), ("large", ctypes.c_uint32)]


@dataclass(frozen=True)
class ProcessRead:
    """One read of a process's mappings by the library."""

    mappings: list[Mapping]
    rss_bytes: int
    anon_rss_bytes: int
    source: ProcessSource  # how the Rss and Anonymous of each mapping were found
    # The library's own buffers, by address (this process only; 0, 0 for another), and their Anonymous bytes.
    buffers: tuple[int, int]
    buffers_anon_bytes: int


class RawWriteFailed(Exception):
    """The raw text could not be written to its file descriptor; ``errno`` says why."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno, os.strerror(errno))
        self.errno = errno


class SnapshotLibrary:
    """libworkbench-probe.so as this process's snapshot reader. Everything it needs per call is made here, once, so
    a call allocates no more than the Python objects it returns."""

    def __init__(self, path: Path) -> None:
        # Serving is for preloaded probes: loaded here the library only answers calls (read at load time).
        previous = os.environ.get("WORKBENCH_PROBE_SERVE")
        os.environ["WORKBENCH_PROBE_SERVE"] = "0"
        try:
            self._library = ctypes.CDLL(str(path))
            # pymalloc's statistics are printed by CPython itself: that call must keep the GIL.
            self._with_gil = ctypes.PyDLL(str(path))
        finally:
            if previous is None:
                del os.environ["WORKBENCH_PROBE_SERVE"]
            else:
                os.environ["WORKBENCH_PROBE_SERVE"] = previous
        self.path = path
        library = self._library
        library.workbench_read_process.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                   ctypes.POINTER(_Process)]
        library.workbench_read_process.restype = ctypes.c_int
        library.workbench_snapshot_mappings.restype = ctypes.c_void_p
        library.workbench_snapshot_pool.restype = ctypes.c_void_p
        library.workbench_stack_pointers.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64), ctypes.c_int,
                                                     ctypes.POINTER(ctypes.c_int)]
        library.workbench_stack_pointers.restype = ctypes.c_int
        library.workbench_allocator_backend.restype = ctypes.c_char_p
        library.workbench_allocator_dump_extension.restype = ctypes.c_char_p
        library.workbench_allocator_dump.argtypes = [ctypes.c_int]
        library.workbench_allocator_dump.restype = ctypes.c_int
        library.workbench_allocator_dump_merged.argtypes = [ctypes.c_int]
        library.workbench_allocator_dump_merged.restype = ctypes.c_int
        library.workbench_allocator_allocated.argtypes = [ctypes.POINTER(ctypes.c_uint64)]
        library.workbench_allocator_allocated.restype = ctypes.c_int
        self._allocated = ctypes.c_uint64()
        library.workbench_allocator_flush_thread_cache.restype = ctypes.c_int
        library.workbench_jemalloc_figures.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
        library.workbench_jemalloc_figures.restype = ctypes.c_longlong
        self._figures = (ctypes.c_int64 * len(JemallocBackend.FIGURES))()
        self._figure_keys = [key for key, _ in JemallocBackend.FIGURES]
        self._figures_lock = threading.Lock()  # the sampler's thread and the snapshots' share the buffer
        library.workbench_size_classes.argtypes = [ctypes.POINTER(_SizeClass), ctypes.c_int]
        library.workbench_size_classes.restype = ctypes.c_int
        self._pools = self._with_gil.workbench_pymalloc_pools
        self._pools.argtypes = [ctypes.c_void_p]
        self._pools.restype = ctypes.c_longlong
        stats = getattr(ctypes.pythonapi, "_PyObject_DebugMallocStats", None)
        self._stats_function = ctypes.cast(stats, ctypes.c_void_p).value if stats is not None else None
        self._process = _Process()
        self._stacks = (ctypes.c_uint64 * _STACKS_MAX)()
        self._threads = ctypes.c_int()
        self._classes = (_SizeClass * _SIZE_CLASSES_MAX)()
        self._views: tuple[memoryview, memoryview] | None = None  # the mappings' records and their lines
        # The last read's mappings, by its generation: a mapping the library finds unchanged is taken from here.
        self._latest: tuple[int, list[Mapping]] = (0, [])
        backend = library.workbench_allocator_backend()
        self.backend = backend.decode() if backend else "unknown"
        extension = library.workbench_allocator_dump_extension()
        self.dump_extension = extension.decode() if extension else None

    def _buffers(self) -> tuple[memoryview, memoryview]:
        if self._views is None:  # the library maps its buffers at its first read
            records = (ctypes.c_char * (_MAPPINGS_MAX * _MAPPING.size)).from_address(
                self._library.workbench_snapshot_mappings())
            pool = (ctypes.c_char * _POOL_BYTES).from_address(self._library.workbench_snapshot_pool())
            self._views = memoryview(records).cast("B"), memoryview(pool).cast("B")
        return self._views

    def read_process(self, raw_fd: int | None = None, pid: int = 0, mode: str = "auto") -> ProcessRead:
        """Every mapping of process ``pid`` (0: this one) with its Rss and Anonymous; with ``raw_fd`` the text they
        came from is written there as it is read. OSError when /proc cannot be read; RawWriteFailed when raw_fd
        refused the text (the figures are still read)."""
        out = self._process
        error = self._library.workbench_read_process(pid, -1 if raw_fd is None else raw_fd, _MODES[mode],
                                                     ctypes.byref(out))
        if error < 0:
            raise OSError(-error, f"reading the mappings of {pid or 'this process'}: {os.strerror(-error)}")
        records, pool = self._buffers()
        generation, latest = self._latest
        if out.previous_generation == 0 or out.previous_generation != generation:
            latest = []  # nothing to take over: every index is -1 then
        mappings = [
            latest[previous] if previous >= 0 else
            Mapping(start, end, perms.decode("ascii", "replace"),
                    str(pool[name_offset:name_offset + name_length], "utf-8", "replace"), end - start, rss, anon)
            for start, end, rss, anon, _, _, name_offset, name_length, perms, previous in
            _MAPPING.iter_unpack(records[:out.mappings * _MAPPING.size])
        ] if latest else [
            Mapping(start, end, perms.decode("ascii", "replace"),
                    str(pool[name_offset:name_offset + name_length], "utf-8", "replace"), end - start, rss, anon)
            for start, end, rss, anon, _, _, name_offset, name_length, perms, _ in
            _MAPPING.iter_unpack(records[:out.mappings * _MAPPING.size])
        ]
        self._latest = (out.generation, mappings)
        read = ProcessRead(mappings, out.rss_bytes, out.anon_rss_bytes, _SOURCES[out.source],
                           (out.buffers_start, out.buffers_end), out.buffers_anon_bytes)
        if out.raw_errno:
            raise RawWriteFailed(out.raw_errno)
        return read

    def stack_pointers(self, pid: int = 0) -> tuple[list[int], int]:
        """The stack pointer of every thread waiting in a system call, sorted, and the number of threads."""
        count = self._library.workbench_stack_pointers(pid, self._stacks, _STACKS_MAX, ctypes.byref(self._threads))
        if count < 0:
            raise OSError(-count, f"reading the threads of {pid or 'this process'}: {os.strerror(-count)}")
        return list(self._stacks[:count]), self._threads.value

    def pymalloc_pools_bytes(self) -> int | None:
        """pymalloc's pools in use in this process (as ``interpreter.pymalloc_pools_bytes``); None without
        pymalloc."""
        if self._stats_function is None:
            return None
        total = int(self._pools(self._stats_function))
        return total if total >= 0 else None

    def allocator_dump(self, fd: int, arenas: bool = True) -> None:
        """The allocator's full statistics written to ``fd`` (``dump_extension`` says their format); OSError when
        the allocator has none or the write failed. ``arenas=False`` leaves out jemalloc's per-arena statistics
        (its merged arena, bins and large classes stay)."""
        dump = self._library.workbench_allocator_dump if arenas else self._library.workbench_allocator_dump_merged
        error = dump(fd)
        if error < 0:
            raise OSError(-error, os.strerror(-error))

    def allocated_bytes(self) -> int | None:
        """The allocator's ``allocated`` now (the figure of ``AllocatorSnapshot.allocated_bytes``), read without a
        Python object in between; None where the allocator has none (mimalloc)."""
        if self._library.workbench_allocator_allocated(ctypes.byref(self._allocated)) != 0:
            return None
        return int(self._allocated.value)

    def jemalloc_figures(self) -> dict[str, int] | None:
        """jemalloc's figures of a snapshot (``JemallocBackend.FIGURES``, a key it did not answer left out) after one
        ``epoch``, read in one call; None when the allocator is not jemalloc."""
        with self._figures_lock:
            known = self._library.workbench_jemalloc_figures(self._figures, len(self._figures))
            if known < 0:
                return None
            values = self._figures
            return {key: values[i] for i, key in enumerate(self._figure_keys) if known >> i & 1}

    def flush_thread_cache(self) -> bool:
        """Give the blocks this thread freed but its allocator cache still holds back to the allocator (jemalloc:
        they count as allocated until then); False where the allocator has no such cache to flush."""
        return bool(self._library.workbench_allocator_flush_thread_cache() == 0)

    def size_classes(self) -> list[SizeClass] | None:
        """jemalloc's live size classes, most bytes first (as ``allocator.size_classes`` finds them in the JSON
        dump); None for another allocator."""
        count = self._library.workbench_size_classes(self._classes, _SIZE_CLASSES_MAX)
        if count < 0:
            return None
        classes = [SizeClass("large" if c.large else "small", c.size_bytes, c.count, c.size_bytes * c.count,
                             c.slabs if c.regions_per_slab else None, c.regions_per_slab or None)
                   for c in self._classes[:count]]
        return sorted(classes, key=lambda c: c.bytes, reverse=True)
