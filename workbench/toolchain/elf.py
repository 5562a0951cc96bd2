"""Just enough of ELF to tell whether a file can be an allocator to preload: a shared object for this machine whose
dynamic symbol table defines ``malloc``. Read before anything starts, so that a wrong file is refused (exit 2)."""

from __future__ import annotations

import mmap
import platform
import struct
from collections.abc import Iterator
from pathlib import Path

_MAGIC = b"\x7fELF"
_ET_DYN = 3
_SHT_DYNSYM = 11
_SHN_UNDEF = 0
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
# e_machine of the machines the workbench runs on (uname -m -> ELF machine number).
_MACHINES = {"x86_64": 62, "aarch64": 183}
# What an allocator library must define for the dynamic linker to route the process's malloc into it.
ALLOCATOR_SYMBOLS = ("malloc", "free")


class NotAnAllocator(Exception):
    """The file cannot be an allocator library; the message says what it is instead."""


def _sections(data: mmap.mmap) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, offset, size, link, entry size) of every section header."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shoff == 0 or shnum == 0 or shoff + shnum * shentsize > len(data):
        raise NotAnAllocator("a truncated ELF file (its section headers are past its end)")
    for index in range(shnum):
        _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + index * shentsize)
        yield kind, offset, size, link, entsize


def defined_functions(path: Path, wanted: tuple[str, ...] = ALLOCATOR_SYMBOLS) -> set[str]:
    """Which of ``wanted`` the shared object at ``path`` defines as functions in its dynamic symbol table.

    Raises NotAnAllocator when the file is no ELF shared object for this machine (or is cut short), OSError when it
    cannot be read."""
    with path.open("rb") as stream:
        if stream.read(4) != _MAGIC:
            raise NotAnAllocator("not an ELF file")
        # Mapped, not read: a library is megabytes, and only its headers and symbol table are looked at.
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _defined(data, wanted)


def _defined(data: mmap.mmap, wanted: tuple[str, ...]) -> set[str]:
    if data[:4] != _MAGIC:
        raise NotAnAllocator("not an ELF file")
    if len(data) < 0x40 or data[4] != 2 or data[5] != 1:
        raise NotAnAllocator("not a 64-bit little-endian ELF file")
    e_type, e_machine = struct.unpack_from("<HH", data, 0x10)
    if e_type != _ET_DYN:
        raise NotAnAllocator("an ELF file that is not a shared library")
    expected = _MACHINES.get(platform.machine())
    if expected is not None and e_machine != expected:
        raise NotAnAllocator(f"a shared library for another machine (ELF machine {e_machine}, this is "
                             f"{platform.machine()})")
    sections = list(_sections(data))
    found: set[str] = set()
    for kind, offset, size, link, entsize in sections:
        if kind != _SHT_DYNSYM or entsize < 24 or link >= len(sections):
            continue
        strings_offset, strings_size = sections[link][1], sections[link][2]
        if offset + size > len(data) or strings_offset + strings_size > len(data):
            raise NotAnAllocator("a truncated ELF file (its symbol table is past its end)")
        for start in range(offset, offset + size - entsize + 1, entsize):
            name_at, info, _other, shndx = struct.unpack_from("<IBBH", data, start)
            if shndx == _SHN_UNDEF or (info & 0xF) not in (_STT_FUNC, _STT_GNU_IFUNC):
                continue
            end = data.find(b"\0", strings_offset + name_at, strings_offset + strings_size)
            name = data[strings_offset + name_at:end].decode(errors="replace") if end >= 0 else ""
            if name in wanted:
                found.add(name)
    return found


def check_allocator_library(path: Path) -> None:
    """Raises NotAnAllocator unless ``path`` is a shared library for this machine that defines malloc and free."""
    missing = [name for name in ALLOCATOR_SYMBOLS if name not in defined_functions(path)]
    if missing:
        raise NotAnAllocator(f"a shared library that does not define {' or '.join(missing)}")
