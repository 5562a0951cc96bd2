"""The interpreter's own heap: pymalloc's arenas are anonymous mmaps of their own, not the measured allocator's."""

from __future__ import annotations

import ctypes
import re

_LINE = re.compile(r"^# bytes (in allocated blocks|in available blocks|lost to pool headers|lost to quantization)"
                   r"\s*=\s*([\d,]+)", re.MULTILINE)


def parse_pymalloc_stats(text: str) -> int | None:
    """The bytes of pymalloc's pools in use (allocated and available blocks, pool headers, quantization) from
    ``_PyObject_DebugMallocStats``'s text; None when the text has none of them (pymalloc off)."""
    found = {name: int(value.replace(",", "")) for name, value in _LINE.findall(text)}
    return sum(found.values()) if len(found) == 4 else None


def pymalloc_pools_bytes() -> int | None:
    """pymalloc's pools in use in this process, read through ``open_memstream`` (no file, no fd juggling)."""
    libc = ctypes.CDLL(None)
    stats = getattr(ctypes.pythonapi, "_PyObject_DebugMallocStats", None)
    if stats is None:
        return None
    libc.open_memstream.restype = ctypes.c_void_p
    libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    stats.argtypes = [ctypes.c_void_p]
    stats.restype = ctypes.c_int
    buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return None
    stats(stream)
    libc.fclose(stream)
    text = ctypes.string_at(buffer, size.value).decode(errors="replace")
    libc.free(ctypes.cast(buffer, ctypes.c_void_p))
    return parse_pymalloc_stats(text)
