"""What ends a run from outside: SIGINT and SIGTERM while it runs, and the exit codes they give (130, 143)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench._errors import WorkbenchError

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


def interrupt_exit_code(signal_name: str) -> int:
    """The shell's convention: 128 + the signal's number (SIGINT 130, SIGTERM 143)."""
    return _EXIT_CODES.get(signal_name, 128 + int(signal.Signals[signal_name]))


def program_exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it: a program killed by signal N exits 128 + N."""
    return returncode if returncode >= 0 else 128 - returncode


class Interrupted(WorkbenchError):
    """The user stopped a run; what was measured until then is in ``run_dir``."""

    def __init__(self, signal_name: str, run_dir: Path | str, what: str = "the partial report") -> None:
        super().__init__(f"interrupted by {signal_name}; {what} is in {run_dir}", interrupt_exit_code(signal_name))


@contextmanager
def on_stop_signals(handler: Callable[[str], None]) -> Iterator[None]:
    """Call ``handler`` with the signal's name on SIGINT or SIGTERM while the block runs; restore the previous
    handlers afterwards."""
    previous = {sig: signal.signal(sig, lambda signum, _frame: handler(signal.Signals(signum).name))
                for sig in STOPPING_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
