import json

from tests.unit import reports
from workbench.report.ledger import (
    LedgerLine,
    Reconciliation,
    describe_basis,
    explain_line,
    explain_unexplained,
    line_label,
    reconcile,
)
from workbench.report.model import report_from_dict, report_to_dict

JEMALLOC_DELTAS = {
    "arrow.requested_bytes": 412500,
    "arrow.allocated_bytes": 524288,
    "nmt.categories.Other.committed_bytes": 4194304,
    "nmt.malloc_total_bytes": 4827397,
    "nmt.total_committed_bytes": 5765381,
    "allocator.allocated_bytes": 6404944,
    "allocator.active_bytes": 6479872,
    "allocator.resident_bytes": 6692864,
    "allocator.mapped_bytes": 6692864,
    "process.anon_rss_bytes": 10596352,
}


def test_jemalloc_chain_from_arrow_to_the_kernel_holds_figures_and_codes_only() -> None:
    ledger = reconcile(JEMALLOC_DELTAS, "netty", "baseline")
    assert ledger == Reconciliation(
        baseline="baseline",
        lines=[
            LedgerLine("arrow.requested_bytes", 412500, 111788, "arrow-rounding"),
            LedgerLine("arrow.allocated_bytes", 524288, 3670016, "netty-chunks"),
            LedgerLine("nmt.categories.Other.committed_bytes", 4194304, 633093, "jvm-mallocs"),
            LedgerLine("nmt.malloc_total_bytes", 4827397, 1577547, "untracked-mallocs"),
            LedgerLine("allocator.allocated_bytes", 6404944, 74928, "fragmentation"),
            LedgerLine("allocator.active_bytes", 6479872, 212992, "dirty-pages"),
            LedgerLine("allocator.resident_bytes", 6692864, 3903488, "outside-allocator"),
            LedgerLine("process.anon_rss_bytes", 10596352, None, None),
        ],
        jvm_mapped_bytes=5765381 - 4827397,
        unexplained_bytes=10596352 - 6692864 - (5765381 - 4827397),
        allocator_figure="allocator.resident_bytes",
    )


def test_the_sentences_are_rendered_from_the_codes_with_the_same_wording() -> None:
    ledger = reconcile(JEMALLOC_DELTAS, "netty", "baseline")
    assert ledger is not None
    first, accounted, resident, kernel = ledger.lines[0], ledger.lines[1], ledger.lines[6], ledger.lines[7]
    assert line_label(first) == "Arrow: requested by vectors" and line_label(kernel) == "process: anonymous RSS"
    assert explain_line(first, ledger) == "+109.2 KiB: Arrow rounds each buffer up to a power of two"
    assert explain_line(accounted, ledger) == (
        "+3.5 MiB: the Netty allocation manager takes whole pooled chunks (4 MiB) from Unsafe and keeps them after "
        "close"
    )
    assert explain_line(resident, ledger) == (
        "+3.7 MiB: memory the kernel counts outside the allocator: JVM mappings +916.0 KiB (heap, metaspace, code, "
        "stacks) and +2.8 MiB unexplained"
    )
    assert explain_line(kernel, ledger) == ""
    assert describe_basis(ledger) == "change since 'baseline'"
    assert explain_unexplained(ledger).startswith(
        "unexplained = anonymous RSS growth - allocator resident growth - JVM mappings (NMT committed - NMT malloc), "
        "whatever its sign"
    )


def test_glibc_chain_skips_the_figures_glibc_does_not_have() -> None:
    deltas = {k: v for k, v in JEMALLOC_DELTAS.items() if k not in ("allocator.active_bytes", "allocator.resident_bytes")}
    ledger = reconcile(deltas, "unsafe", "baseline")
    assert ledger is not None
    assert [line.figure for line in ledger.lines][-3:] == [
        "allocator.allocated_bytes", "allocator.mapped_bytes", "process.anon_rss_bytes",
    ]
    assert ledger.allocator_figure == "allocator.mapped_bytes"
    assert ledger.unexplained_bytes == 10596352 - 6692864 - (5765381 - 4827397)
    assert ledger.lines[1].reason == "unsafe-mallocs"
    assert explain_line(ledger.lines[1], ledger) == (
        "+3.5 MiB: the Unsafe allocation manager mallocs each buffer as accounted; the rest is other Unsafe and "
        "direct-buffer use"
    )
    assert "allocator mapped growth" in explain_unexplained(ledger)


def test_no_process_figure_no_ledger() -> None:
    assert reconcile({"arrow.allocated_bytes": 1}, "netty", "baseline") is None


def test_on_a_fabricated_run_the_chain_sums_exactly_to_anon_rss_growth() -> None:
    for report in (reports.jemalloc_report(), reports.glibc_report()):
        ledger = report.snapshot("allocated").reconciliation
        assert ledger is not None
        lines = ledger.lines
        # Each step down is the next line minus this one, so the steps from the top add up to the kernel's figure.
        assert lines[0].bytes + sum(line.delta_to_next or 0 for line in lines) == lines[-1].bytes == 10_596_352
        allocator = {"jemalloc": 6_692_864, "glibc": 6_692_864}[report.allocator.name]
        assert ledger.jvm_mapped_bytes == 5_765_381 - 4_827_397 == 937_984
        assert ledger.unexplained_bytes == 10_596_352 - allocator - 937_984 == 2_965_504
    assert reports.glibc_report().snapshot("allocated").reconciliation == Reconciliation(
        baseline="baseline",
        lines=[
            LedgerLine("arrow.requested_bytes", 412_500, 111_788, "arrow-rounding"),
            LedgerLine("arrow.allocated_bytes", 524_288, 3_670_016, "netty-chunks"),
            LedgerLine("nmt.categories.Other.committed_bytes", 4_194_304, 633_093, "jvm-mallocs"),
            LedgerLine("nmt.malloc_total_bytes", 4_827_397, 1_577_547, "untracked-mallocs"),
            LedgerLine("allocator.allocated_bytes", 6_404_944, 287_920, "fragmentation"),
            LedgerLine("allocator.mapped_bytes", 6_692_864, 3_903_488, "outside-allocator"),
            LedgerLine("process.anon_rss_bytes", 10_596_352, None, None),
        ],
        jvm_mapped_bytes=937_984, unexplained_bytes=2_965_504, allocator_figure="allocator.mapped_bytes",
    )


def test_the_json_ledger_has_figures_and_codes_and_no_sentence() -> None:
    data = report_to_dict(reports.jemalloc_report())
    ledger = data["snapshots"][1]["reconciliation"]
    assert set(ledger) == {"baseline", "lines", "jvm_mapped_bytes", "unexplained_bytes", "allocator_figure", "owners",
                           "python_pools_delta", "malloc", "rounding", "bound_bytes", "malloc_layer", "sizes",
                           "workbench_delta", "glibc_chunks"}
    assert ledger["owners"] is None  # the fabricated run was not attributed by address
    assert ledger["lines"][1] == {"figure": "arrow.allocated_bytes", "bytes": 524_288, "delta_to_next": 3_670_016,
                                  "reason": "netty-chunks"}
    assert "KiB" not in json.dumps(data) and "MiB" not in json.dumps(data)


def test_a_report_written_with_sentence_ledgers_loads_with_its_ledgers_made_again() -> None:
    report = reports.jemalloc_report()
    data = report_to_dict(report)
    for snapshot in data["snapshots"]:
        ledger = snapshot["reconciliation"]
        snapshot["reconciliation"] = {
            "basis": "change since 'baseline'",
            "lines": [{"layer": "Arrow: accounted", "bytes": line["bytes"], "delta_to_next": line["delta_to_next"],
                       "explanation": "+3.5 MiB: ..."} for line in ledger["lines"]],
            "jvm_mapped_bytes": ledger["jvm_mapped_bytes"], "unexplained_bytes": ledger["unexplained_bytes"],
            "explanation": "unexplained = ...",
        }
    assert report_from_dict(data) == report
