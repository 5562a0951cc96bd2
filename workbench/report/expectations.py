"""What a scenario's expectation asked for and what was measured: the result kept in the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True)
class ExpectationResult:
    index: int  # which entry of the scenario's `expect`
    at: str | None
    delta: str | None
    path: str
    op: str
    expected: Any
    measured: Any
    ok: bool
    note: str = ""

    def describe(self) -> str:
        where = f"at {self.at}" + (f", change since {self.delta}" if self.delta else "") if self.at else "report"
        return f"{where}: {self.path} {SYMBOLS.get(self.op, self.op)} {self.expected}"
