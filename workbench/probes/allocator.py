"""The malloc the process really has, found from its symbols, and that allocator's own statistics."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass


@dataclass(frozen=True)
class AllocatorInfo:
    """Which allocator answers malloc in this process, and how it was built."""

    backend: str  # "jemalloc" or "glibc"
    library: str | None
    version: str | None
    config_prof: bool | None
    config_stats: bool | None


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


_JEMALLOC_STATS = ("allocated", "active", "metadata", "resident", "mapped", "retained")


class AllocatorProbe:
    """Reads the statistics of whichever allocator the process resolves ``malloc`` to."""

    def __init__(self) -> None:
        self._process = ctypes.CDLL(None)
        self._mallctl = getattr(self._process, "mallctl", None)
        if self._mallctl is not None:
            self._mallctl.restype = ctypes.c_int
            self._mallctl.argtypes = [
                ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.c_size_t,
            ]
            self.info = AllocatorInfo(
                backend="jemalloc",
                library=self._library_of("mallctl"),
                version=self._read_string("version"),
                config_prof=self._read_bool("config.prof"),
                config_stats=self._read_bool("config.stats"),
            )
        else:
            self._mallinfo2 = self._process.mallinfo2
            self._mallinfo2.restype = _MallInfo2
            self._mallinfo2.argtypes = []
            gnu_get_libc_version = self._process.gnu_get_libc_version
            gnu_get_libc_version.restype = ctypes.c_char_p
            self.info = AllocatorInfo(
                backend="glibc",
                library=self._library_of("malloc"),
                version=gnu_get_libc_version().decode(),
                config_prof=None,
                config_stats=None,
            )

    def _library_of(self, symbol: str) -> str | None:
        address = ctypes.cast(getattr(self._process, symbol), ctypes.c_void_p)
        info = _DlInfo()
        if self._process.dladdr(address, ctypes.byref(info)) == 0 or not info.dli_fname:
            return None
        return str(info.dli_fname.decode())

    def _read(self, name: str, value: ctypes._SimpleCData) -> bool:  # type: ignore[type-arg]
        size = ctypes.c_size_t(ctypes.sizeof(value))
        return bool(self._mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0) == 0)

    def _read_string(self, name: str) -> str | None:
        value = ctypes.c_char_p()
        return value.value.decode() if self._read(name, value) and value.value else None

    def _read_bool(self, name: str) -> bool | None:
        value = ctypes.c_bool()
        return bool(value.value) if self._read(name, value) else None

    def _read_size(self, name: str) -> int | None:
        value = ctypes.c_size_t()
        return int(value.value) if self._read(name, value) else None

    def snapshot(self) -> AllocatorSnapshot:
        """Current statistics (jemalloc: after advancing ``epoch``, which refreshes them)."""
        if self._mallctl is not None:
            epoch = ctypes.c_uint64(1)
            self._mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
            stats = {name: self._read_size(f"stats.{name}") for name in _JEMALLOC_STATS}
            return AllocatorSnapshot(backend="jemalloc", **{f"{k}_bytes": v for k, v in stats.items()})
        info = self._mallinfo2()
        # glibc: in use = small chunks in arenas + mmapped chunks; obtained from the system = arenas + mmapped.
        return AllocatorSnapshot(
            backend="glibc",
            allocated_bytes=info.uordblks + info.hblkhd,
            active_bytes=None,
            metadata_bytes=None,
            resident_bytes=None,
            mapped_bytes=info.arena + info.hblkhd,
            retained_bytes=None,
        )
