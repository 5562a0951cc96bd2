from workbench.report.ledger import reconcile

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


def test_jemalloc_chain_from_arrow_to_the_kernel_sums_exactly() -> None:
    ledger = reconcile(JEMALLOC_DELTAS, "netty", "baseline")
    assert ledger is not None
    assert [line.bytes for line in ledger.lines] == [
        412500, 524288, 4194304, 4827397, 6404944, 6479872, 6692864, 10596352,
    ]
    for line, following in zip(ledger.lines, ledger.lines[1:]):
        assert line.delta_to_next == following.bytes - line.bytes
    assert ledger.lines[-1].delta_to_next is None
    assert ledger.jvm_mapped_bytes == 5765381 - 4827397
    assert ledger.unexplained_bytes == 10596352 - 6692864 - (5765381 - 4827397)
    assert ledger.lines[0].explanation == "+109.2 KiB: Arrow rounds each buffer up to a power of two"
    assert "Netty" in ledger.lines[1].explanation and "4 MiB" in ledger.lines[1].explanation


def test_glibc_chain_skips_the_figures_glibc_does_not_have() -> None:
    deltas = {k: v for k, v in JEMALLOC_DELTAS.items() if k not in ("allocator.active_bytes", "allocator.resident_bytes")}
    ledger = reconcile(deltas, "unsafe", "baseline")
    assert ledger is not None
    assert [line.layer for line in ledger.lines][-3:] == [
        "allocator: allocated", "allocator: mapped", "process: anonymous RSS",
    ]
    assert ledger.unexplained_bytes == 10596352 - 6692864 - (5765381 - 4827397)
    assert "Unsafe allocation manager" in ledger.lines[1].explanation


def test_no_process_figure_no_ledger() -> None:
    assert reconcile({"arrow.allocated_bytes": 1}, "netty", "baseline") is None
