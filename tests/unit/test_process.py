from pathlib import Path

from workbench.probes.process import parse_smaps, summarize

FIXTURES = Path(__file__).parent / "fixtures"
KIB = 1024


def test_smaps_mappings_are_parsed_with_names_and_sizes() -> None:
    mappings = parse_smaps((FIXTURES / "smaps-small.txt").read_text())
    assert len(mappings) == 7
    assert mappings[0].name == "/usr/bin/python3.11"
    assert mappings[1].name == "[heap]" and mappings[1].size_bytes == 4096 * KIB
    assert mappings[2].start == 0x7F0000000000 and mappings[2].rss_bytes == 4100 * KIB


def test_anonymous_mappings_are_what_pmap_shows_as_anon_plus_the_heap() -> None:
    snapshot = summarize(parse_smaps((FIXTURES / "smaps-small.txt").read_text()))
    assert snapshot.anon_mappings == 4
    assert snapshot.anon_mappings_rss_bytes == (3000 + 4100 + 0 + 512) * KIB
    assert snapshot.rss_bytes == 7732 * KIB
    assert snapshot.anon_rss_bytes == 7660 * KIB
    assert [m.rss_bytes // KIB for m in snapshot.largest_anon_mappings] == [4100, 3000, 512, 0]


def test_own_process_is_readable() -> None:
    from workbench.probes.process import read_process

    snapshot, raw = read_process()
    assert snapshot.rss_bytes > 0 and snapshot.anon_rss_bytes <= snapshot.rss_bytes
    assert "Rss:" in raw
    # Summed from smaps, the totals agree with the kernel's own rollup (bounded: the process moves meanwhile).
    with open("/proc/self/smaps_rollup") as f:
        rollup = {l.split()[0]: int(l.split()[1]) * 1024 for l in f if l.startswith(("Rss:", "Anonymous:"))}
    assert abs(rollup["Rss:"] - snapshot.rss_bytes) < 4 * 1024 * 1024
    assert abs(rollup["Anonymous:"] - snapshot.anon_rss_bytes) < 4 * 1024 * 1024
