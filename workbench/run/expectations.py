"""A scenario's expectations, checked against the finished report's JSON form."""

from __future__ import annotations

import operator
from typing import Any

from workbench.report.expectations import ExpectationResult
from workbench.scenario.model import Expectation
from workbench.units import parse_size

OPS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
       "ge": operator.ge}


def lookup(data: Any, path: str) -> tuple[bool, Any]:
    """The value at a dotted path (list items by index), and whether it was there."""
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False, None
    return True, data


def normalize(value: Any) -> Any:
    """Sizes with units become bytes; other strings stay strings."""
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError:
            return value
    return value


def check_expectations(report: dict[str, Any], expectations: list[Expectation]) -> list[ExpectationResult]:
    """Every comparison of every expectation against the report's JSON form."""
    snapshots = {s["label"]: s for s in report.get("snapshots", [])}
    results: list[ExpectationResult] = []
    for index, expectation in enumerate(expectations):
        if expectation.leaks is not None:
            leaks = report.get("leaks", [])
            results.append(ExpectationResult(
                index, None, None, "leaks", "eq", expectation.leaks,
                "none" if not leaks else ", ".join(f"{leak['allocator']}: {leak['bytes']:,} B" for leak in leaks),
                expectation.leaks == "allowed" or not leaks,
            ))
        base = snapshots.get(expectation.at) if expectation.at else report
        other = snapshots.get(expectation.delta) if expectation.delta else None
        for path, comparison in expectation.paths().items():
            for op, expected in comparison.checks():
                found, measured = lookup(base, path) if base is not None else (False, None)
                note = ""
                if expectation.at and base is None:
                    found, note = False, f"no snapshot '{expectation.at}' was taken (the run stopped before it)"
                elif not found:
                    note = "no such field in the report"
                elif other is not None:
                    found_other, before = lookup(other, path)
                    if found_other and isinstance(measured, (int, float)) and isinstance(before, (int, float)):
                        measured = measured - before
                    else:
                        found, note = False, f"no numeric figure at '{expectation.delta}' to take the change from"
                if found and measured is None:
                    note = "null: this layer has no such figure"
                try:
                    ok = found and measured is not None and bool(OPS[op](measured, normalize(expected)))
                except TypeError:
                    ok, note = False, f"cannot compare {measured!r} with {expected!r}"
                results.append(ExpectationResult(index, expectation.at, expectation.delta, path, op, expected,
                                                 measured, ok, note))
    return results
