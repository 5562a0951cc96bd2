"""The one error type for what a user can fix or what made a run fail; everything else is a bug."""

from __future__ import annotations

EXPECTATIONS_FAILED = 1
BAD_INPUT = 2
RUN_FAILED = 3


class WorkbenchError(Exception):
    """A user's mistake (exit 2) or a failed run (exit 3), printed by the CLI as one line, without traceback."""

    def __init__(self, message: str, exit_code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class BadInput(WorkbenchError):
    def __init__(self, message: str) -> None:
        super().__init__(message, BAD_INPUT)


class RunFailed(WorkbenchError):
    def __init__(self, message: str) -> None:
        super().__init__(message, RUN_FAILED)
