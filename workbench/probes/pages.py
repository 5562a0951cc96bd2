"""What the kernel has resident of an address range, page by page (``/proc/<pid>/pagemap``).

smaps gives one figure per mapping; where an owner holds only part of a mapping (the kernel merges neighbouring
anonymous mappings of different owners into one), its share is counted here, with smaps' own rule for
``Anonymous``: a page that is present and mapped by this process alone (the shared zero page, mapped where memory
was read but never written, is not).
"""

from __future__ import annotations

import os
import struct

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_PRESENT = 1 << 63
_FILE_OR_SHARED = 1 << 61
_EXCLUSIVE = 1 << 56
_CHUNK_PAGES = 1 << 16  # 512 KiB of pagemap entries per read


def anonymous_bytes(ranges: list[tuple[int, int]], pid: int | str = "self") -> int:
    """The bytes of anonymous pages the kernel has resident in ``ranges`` ((start, end) pairs, page-aligned)."""
    total = 0
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        for start, end in ranges:
            page = start // PAGE_BYTES
            last = (end + PAGE_BYTES - 1) // PAGE_BYTES
            while page < last:
                count = min(_CHUNK_PAGES, last - page)
                data = os.pread(pagemap.fileno(), count * 8, page * 8)
                for entry in struct.unpack(f"<{len(data) // 8}Q", data):
                    if entry & _PRESENT and entry & _EXCLUSIVE and not entry & _FILE_OR_SHARED:
                        total += 1
                page += count
    return total * PAGE_BYTES
