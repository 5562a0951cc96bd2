"""Sizes and durations: integers (bytes, milliseconds) inside, units only at the edges."""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_DURATION_UNITS = {"": 1000, "ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}
MAX_DURATION_MS = 30 * 24 * 3_600_000  # beyond this a timer or sleep overflows long before it could end
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``64MiB``, ``512 KiB``, ``4kb``; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 4096 or 64MiB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("expected a size of at least 0 bytes")
        return value
    match = _NUMBER_UNIT.match(str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 4096 or 64MiB, got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration_ms(value: int | float | str) -> int:
    """Milliseconds from seconds (a number, or a string without unit) or a string such as ``500ms``, ``2.5s``, ``1m``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms or 1s")
    if isinstance(value, (int, float)):
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"expected a finite duration of at least 0, got {value!r}")
        return _whole_ms(value * 1000, value)
    match = _NUMBER_UNIT.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _DURATION_UNITS:
        raise ValueError(f"expected a duration such as 500ms or 1s, got {value!r}")
    return _whole_ms(float(match.group(1)) * _DURATION_UNITS[unit], value)


def _whole_ms(millis: float, given: object) -> int:
    """Durations are whole milliseconds: a positive value under 1 ms would silently become 0."""
    if 0 < millis < 1:
        raise ValueError(f"expected a duration of at least 1ms (or 0), got {given!r}")
    if millis > MAX_DURATION_MS:
        raise ValueError(f"expected a duration of at most 30 days, got {given!r}")
    return int(millis)


def format_bytes(value: int | None, signed: bool = False) -> str:
    """Human units with binary prefixes: ``512.0 KiB``; ``-`` for a value a layer could not give."""
    if value is None:
        return "-"
    sign = "+" if signed and value > 0 else ("-" if value < 0 else "")
    size = float(abs(value))
    if size < 1024:
        return f"{sign}{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{sign}{size:.1f} {unit}"
    raise AssertionError("unreachable")
