"""jemalloc's size classes: parsed once from malloc_stats_print's JSON into the report, rendered from there."""

from __future__ import annotations

import json

from tests.unit import reports
from tests.unit.test_renderers import page
from workbench.probes.allocator import SizeClass, jemalloc_size_classes, size_classes
from workbench.report.markdown import render_markdown
from workbench.report.model import report_from_dict, report_to_dict

# The shape of malloc_stats_print(..., "J"), cut down to what the parser reads: 3 bins and 3 large sizes.
STATS = {
    "jemalloc": {
        "version": "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c",
        "arenas": {"bin": [{"size": 8}, {"size": 16}, {"size": 48}],
                   "lextent": [{"size": 16384}, {"size": 20480}, {"size": 4194304}]},
        "stats.arenas": {"merged": {
            "bins": [{"curregs": 1000, "nmalloc": 5}, {"curregs": 0}, {"curregs": 3}],
            "lextents": [{"curlextents": 0}, {"curlextents": 2}, {"curlextents": 1}],
        }},
    }
}


def test_live_size_classes_most_bytes_first_with_exact_bytes() -> None:
    assert jemalloc_size_classes(json.dumps(STATS)) == [
        SizeClass("large", 4_194_304, 1, 4_194_304),
        SizeClass("large", 20_480, 2, 40_960),
        SizeClass("small", 8, 1000, 8000),
        SizeClass("small", 48, 3, 144),
    ]


def test_no_size_classes_without_merged_statistics_or_from_another_allocator() -> None:
    without_merged = {"jemalloc": {**STATS["jemalloc"], "stats.arenas": {}}}
    assert jemalloc_size_classes(json.dumps(without_merged)) is None
    assert jemalloc_size_classes("{not json") is None
    assert size_classes(("xml", "<malloc version=\"1\"></malloc>")) is None
    assert size_classes(None) is None
    assert size_classes(("json", json.dumps(STATS))) == jemalloc_size_classes(json.dumps(STATS))


def test_size_classes_travel_in_the_report_json_and_old_reports_load_without_them() -> None:
    report = reports.jemalloc_report()
    data = report_to_dict(report)
    assert data["snapshots"][-1]["size_classes"][0] == {"kind": "large", "size_bytes": 4_194_304, "count": 1,
                                                        "bytes": 4_194_304, "slabs": None, "regions_per_slab": None}
    assert data["snapshots"][0]["size_classes"] is None
    assert report_from_dict(data) == report
    for snapshot in data["snapshots"]:
        del snapshot["size_classes"]
    assert [s.size_classes for s in report_from_dict(data).snapshots] == [None, None, None]


def test_markdown_has_the_top_15_size_classes_of_the_last_snapshot() -> None:
    markdown = render_markdown(reports.jemalloc_report()).splitlines()
    start = markdown.index("## Size classes at 'closed'")
    assert markdown[start + 2] == \
        "Top 15 of 16 by live bytes, all arenas merged: small bins (live regions x size) and large extents."
    table = markdown[start + 4:start + 4 + 2 + 15]
    assert table[:4] == [
        "| kind | size class | live | bytes |",
        "|---|---:|---:|---:|",
        "| large | 4.0 MiB (4,194,304 B) | 1 | 4.0 MiB (4,194,304 B) |",
        "| large | 512.0 KiB (524,288 B) | 1 | 512.0 KiB (524,288 B) |",
    ]
    assert table[-1] == "| small | 32 B | 100 | 3.1 KiB (3,200 B) |"
    # The 16th (16 B x 100) is not shown; the size classes close the report.
    assert markdown[start + 4 + 2 + 15:] == [] and not any(line.startswith("| small | 16 B") for line in markdown)


def test_markdown_and_html_say_why_glibc_has_no_size_classes() -> None:
    note = "Size classes are available for jemalloc only (this run's allocator: glibc)."
    assert note in render_markdown(reports.glibc_report()).splitlines()
    assert "size-classes" not in page(reports.glibc_report()).tables


def test_html_renders_the_size_classes_from_the_report_without_a_run_directory() -> None:
    rows = page(reports.jemalloc_report()).tables["size-classes"]
    assert rows[0] == [("kind", None), ("size class", None), ("live", None), ("bytes", None)]
    assert len(rows) == 1 + 15
    assert rows[1] == [("large", None), ("4.0 MiB", "4,194,304 B"), ("1", None), ("4.0 MiB", "4,194,304 B")]
    assert [int((row[3][1] or "").removesuffix(" B").replace(",", "")) for row in rows[1:]] == \
        [c.bytes for c in reports.SIZE_CLASSES[:15]]
