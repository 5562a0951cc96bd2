import pytest

from workbench.units import format_bytes, parse_duration_ms, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [(4096, 4096), ("4096", 4096), ("64MiB", 64 * 2**20), ("512 KiB", 524288), ("4kb", 4000), ("1GiB", 2**30)],
)
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["lots", "4 parsecs", -1, True])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"), [(1, 1000), (0.5, 500), ("500ms", 500), ("2.5s", 2500), ("1m", 60000), ("0", 0)]
)
def test_durations(text: object, expected: int) -> None:
    assert parse_duration_ms(text) == expected  # type: ignore[arg-type]


def test_format_bytes() -> None:
    assert format_bytes(524288) == "512.0 KiB"
    assert format_bytes(4194304, signed=True) == "+4.0 MiB"
    assert format_bytes(-1536) == "-1.5 KiB"
    assert format_bytes(12) == "12 B"
    assert format_bytes(None) == "-"
