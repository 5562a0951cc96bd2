"""Ended threads' stacks that glibc keeps mapped for reuse (its stack cache, up to 40 MiB by default).

glibc's ``allocate_stack`` maps a thread's stack in one piece, with the guard below it (``---p``: glibc's guard page,
or HotSpot's guard zones for a Java thread), and puts the thread's descriptor (``struct pthread``) at its top. When
a thread ends, its stack goes to the cache still mapped (only the part below the stack pointer is given back with
MADV_DONTNEED), and the kernel clears the descriptor's ``tid`` (CLONE_CHILD_CLEARTID): glibc reuses a cached stack
only once that field is 0. A live thread's stack has the same shape, so the shape alone never decides: a mapping is
an ended thread's stack when it has the shape, no live thread's stack pointer is in it, and its descriptor (found by
its header, which points to itself twice: ``tcb`` and ``self``) says tid 0.

The descriptor is read through ``/proc/self/mem`` (an unmapped page is an error to the read, never a fault), only in
the top page or two of a mapping, which a thread that ran on the stack has written; ``tid``'s offset in the
descriptor is learnt from the calling thread's own (``pthread_self``, its tid), not assumed.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from workbench.probes.pages import PAGE_BYTES
from workbench.probes.process import Mapping

_DESCRIPTOR_PAGES = 2  # the descriptor sits below the mapping's end by its size (2,368 B, glibc 2.36) and alignment
_LEARN_BYTES = 2048  # how much of the calling thread's descriptor is searched for its tid


@dataclass(frozen=True)
class CachedStacks:
    """How the ended threads' stacks (owner cached-stacks) were found at one snapshot."""

    # "descriptor": a read-write anonymous mapping right above an inaccessible one (the guard), no live thread's
    # stack pointer in it, and glibc's thread descriptor at its top with tid 0 (the kernel clears it at the end).
    how: Literal["descriptor"]
    mappings: int  # the mappings found so
    resident_bytes: int  # the kernel's anonymous bytes in them
    candidates: int  # mappings of that shape whose descriptor was read (a live thread's says its tid)


def has_stack_shape(mapping: Mapping, below: Mapping | None) -> bool:
    """A private read-write anonymous mapping directly above an inaccessible anonymous one: a thread stack's shape
    as glibc maps it (its guard below), or HotSpot's (its guard zones below)."""
    return (below is not None and below.end == mapping.start and below.perms.startswith("---")
            and not below.name and not mapping.name and mapping.perms.startswith("rw") and mapping.perms[3:4] == "p")


def descriptor_tid(end: int, read: Callable[[int, int], bytes | memoryview | None], tid_offset: int,
                   below_end: int | None = None) -> tuple[int, int] | None:
    """The ``tid`` of the glibc thread descriptor in the top pages below ``end``, and how far below ``end`` the
    descriptor is; None when there is none: no 8-aligned word that holds its own address with the same address two
    words on (``tcb`` and ``self``). ``below_end``: where it is in a stack glibc made (every one has its descriptor at
    the same distance below its end), known from an earlier search; then nowhere else is looked."""
    if below_end is not None and (data := read(end - below_end, 24 + tid_offset + 4)) is not None:
        word, _, self_word = struct.unpack_from("<QQQ", data)
        if word == self_word == end - below_end:
            return int(struct.unpack_from("<i", data, tid_offset)[0]), below_end
    if below_end is not None:
        return None  # glibc's own stacks have it there: this one is not glibc's
    for page in range(1, _DESCRIPTOR_PAGES + 1):
        low = end - page * PAGE_BYTES
        data = read(low, PAGE_BYTES)
        if data is None:
            return None
        words = memoryview(data).cast("B").cast("Q")
        found = [index for index, (word, address) in enumerate(zip(words, range(low, end, 8))) if word == address
                 and index + 2 < len(words) and words[index + 2] == address]
        if found:  # the highest: the descriptor is near the top
            address = low + found[-1] * 8
            at = address - low + tid_offset
            tid = (int(struct.unpack_from("<i", data, at)[0]) if at + 4 <= len(data)
                   else _tid_at(read, address + tid_offset))
            return None if tid is None else (tid, end - address)
    return None


def _tid_at(read: Callable[[int, int], bytes | memoryview | None], address: int) -> int | None:
    more = read(address, 4)
    return int(struct.unpack_from("<i", more)[0]) if more is not None else None


class DescriptorReader:
    """This process's thread descriptors, read through ``/proc/self/mem``; opened once, on first use."""

    def __init__(self) -> None:
        self._mem = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
        # One buffer for every read, made once: a snapshot allocates nothing here.
        self._buffer = memoryview(bytearray(max(PAGE_BYTES, _LEARN_BYTES, 1024)))
        self.tid_offset = self._learn_tid_offset()
        self._below_end: int | None = None  # where the last descriptor found was, below its stack's end

    def read(self, address: int, size: int) -> memoryview | None:
        """``size`` bytes at ``address`` (in the reader's buffer, valid until the next read); None when they are
        not mapped (any more)."""
        view = self._buffer[:size]
        try:
            return view if os.preadv(self._mem, [view], address) == size else None
        except OSError:
            return None

    def _learn_tid_offset(self) -> int | None:
        """Where ``tid`` is in glibc's descriptor: the one offset at which the calling thread's descriptor holds its
        tid; None when it is not exactly one (then nothing is found by descriptor)."""
        libc = ctypes.CDLL(None)
        libc.pthread_self.restype = ctypes.c_void_p
        descriptor = libc.pthread_self()
        data = self.read(descriptor, _LEARN_BYTES) if descriptor else None
        if data is None or struct.unpack_from("<Q", data)[0] != descriptor:
            return None
        tid = threading.get_native_id()
        offsets = [at for at in range(24, len(data) - 3, 4) if struct.unpack_from("<i", data, at)[0] == tid]
        return offsets[0] if len(offsets) == 1 else None

    def ended(self, mapping: Mapping) -> bool | None:
        """Whether ``mapping`` is an ended thread's stack by its descriptor: True (tid 0), False (a live thread's),
        None (no descriptor found, or the tid's offset is not known)."""
        if self.tid_offset is None:
            return None
        found = descriptor_tid(mapping.end, self.read, self.tid_offset, self._below_end)
        if found is None:
            return None
        tid, below_end = found
        if self._below_end is None and (tid == 0 or os.path.exists(f"/proc/self/task/{tid}")):
            self._below_end = below_end  # every stack glibc makes has its descriptor there: looked at only there
        return tid == 0


_READER: list[DescriptorReader] = []


def ended_thread_stack(mapping: Mapping) -> bool | None:
    """``DescriptorReader.ended`` for this process (the reader made at the first call)."""
    if not _READER:
        _READER.append(DescriptorReader())
    return _READER[0].ended(mapping)
