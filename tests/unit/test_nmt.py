from pathlib import Path

import pytest

from workbench.probes.nmt import parse_summary

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_jdk17_summary_in_bytes_gives_exact_totals_and_categories() -> None:
    summary = parse_summary(read("nmt-jdk17-summary-b.txt"))
    assert summary is not None
    assert summary.total_reserved_bytes == 8035746229
    assert summary.total_committed_bytes == 497902005
    assert summary.malloc_total_bytes == 15372725
    assert summary.malloc_total_count == 35893
    other = summary.categories["Other"]
    assert (other.reserved_bytes, other.committed_bytes, other.malloc_bytes, other.malloc_count) == (
        534536, 534536, 534536, 4,
    )
    heap = summary.categories["Java Heap"]
    assert heap.committed_bytes == 406847488 and heap.malloc_bytes is None
    assert len(summary.categories) == 21


def test_jdk25_summary_reads_tagged_malloc_lines_and_malloc_total() -> None:
    summary = parse_summary(read("nmt-jdk25-summary-b.txt"))
    assert summary is not None
    assert summary.total_committed_bytes == 491121087
    assert summary.malloc_total_bytes == 17557951
    assert summary.malloc_total_count == 29895
    assert summary.categories["Other"].malloc_bytes == 559104
    assert summary.categories["Other"].malloc_count == 3
    assert summary.categories["Class"].malloc_bytes == 212462
    assert "Thread" in summary.categories and "Java Heap" in summary.categories


@pytest.mark.parametrize("name", ["nmt-jdk17-summary-kb.txt", "nmt-jdk25-summary-kb.txt"])
def test_kilobyte_scale_is_converted_to_bytes(name: str) -> None:
    summary = parse_summary(read(name))
    assert summary is not None
    assert summary.total_committed_bytes % 1024 == 0
    assert summary.categories["Other"].committed_bytes % 1024 == 0
    # The same run in bytes and in KB agree to within the rounding of each category.
    exact = parse_summary(read(name.replace("-kb", "-b")))
    assert exact is not None
    assert abs(exact.categories["Other"].committed_bytes - summary.categories["Other"].committed_bytes) < 1024


def test_jdk17_without_malloc_total_line_sums_the_categories() -> None:
    text = "\n".join(line for line in read("nmt-jdk17-summary-b.txt").splitlines() if "malloc: " not in line)
    summary = parse_summary(text)
    assert summary is not None
    assert summary.malloc_total_bytes == sum(c.malloc_bytes or 0 for c in summary.categories.values())
    assert summary.malloc_total_bytes > 10_000_000


def test_nmt_off_is_none_not_zeros() -> None:
    assert parse_summary("Native memory tracking is not enabled\n") is None


def test_text_that_is_not_a_summary_is_an_error() -> None:
    with pytest.raises(ValueError, match="not an NMT summary"):
        parse_summary("Error: something else\n")
