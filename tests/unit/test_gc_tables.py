"""The GC's own tables from ``-Xlog:pagesize`` (JDK 17 and 25, as they print them): regions owned by ``gc``, so the
pages G1's full GC touches in its mark bitmaps are found by address."""

from __future__ import annotations

from workbench.probes.regions import REGIONS_LOG_OPTION, Region, parse_start_up_log

KIB = 1024
JDK17 = """\
[0.005s][info][pagesize] Heap:  min=8M max=6028M base=0x0000000687400000 page_size=4K size=6028M
[0.005s][info][pagesize] Block Offset Table: req_size=12056K base=0x00007efe75862000 page_size=4K alignment=4K size=12056K
[0.005s][info][pagesize] Card Table: req_size=12056K base=0x00007efe74c9c000 page_size=4K alignment=4K size=12056K
[0.005s][info][pagesize] Card Counts Table: req_size=12056K base=0x00007efe740d6000 page_size=4K alignment=4K size=12056K
[0.005s][info][pagesize] Prev Bitmap: req_size=96448K base=0x00007efe535d0000 page_size=4K alignment=4K size=96448K
[0.005s][info][pagesize] Next Bitmap: req_size=96448K base=0x00007efe4d7a0000 page_size=4K alignment=4K size=96448K
"""
JDK25 = """\
[0.005s][info][pagesize] Heap:  min=8M max=6028M base=0x0000000687400000 size=6028M page_size=4K
[0.005s][info][pagesize] Block Offset Table: req_size=12056K req_page_size=4K base=0x00007f1a042dd000 size=12056K page_size=4K
[0.005s][info][pagesize] Card Table: req_size=12056K req_page_size=4K base=0x00007f19e7839000 size=12056K page_size=4K
[0.005s][info][pagesize] Mark Bitmap: req_size=96448K req_page_size=4K base=0x00007f19e1a09000 size=96448K page_size=4K
"""
PARALLEL = """\
[0.004s][info][pagesize] Card Table:  min=12345345B max=12345345B base=0x00007f8842e63000 page_size=4K size=12060K
"""


def test_the_workbench_asks_for_the_pagesize_log() -> None:
    assert ",pagesize=info:" in REGIONS_LOG_OPTION


def test_g1s_tables_and_bitmaps_are_the_gcs_on_jdk17_and_25() -> None:
    assert parse_start_up_log(JDK17) == [
        Region(0x7EFE75862000, 0x7EFE75862000 + 12056 * KIB, "gc", "start-up-log"),
        Region(0x7EFE74C9C000, 0x7EFE74C9C000 + 12056 * KIB, "gc", "start-up-log"),
        Region(0x7EFE740D6000, 0x7EFE740D6000 + 12056 * KIB, "gc", "start-up-log"),
        Region(0x7EFE535D0000, 0x7EFE535D0000 + 96448 * KIB, "gc", "start-up-log"),
        Region(0x7EFE4D7A0000, 0x7EFE4D7A0000 + 96448 * KIB, "gc", "start-up-log"),
    ]
    assert [(r.start, r.end - r.start) for r in parse_start_up_log(JDK25)] == [
        (0x7F1A042DD000, 12056 * KIB), (0x7F19E7839000, 12056 * KIB), (0x7F19E1A09000, 96448 * KIB)]
    # The size after base, not min= or req_size=.
    assert parse_start_up_log(PARALLEL) == [Region(0x7F8842E63000, 0x7F8842E63000 + 12060 * KIB, "gc",
                                                   "start-up-log")]
