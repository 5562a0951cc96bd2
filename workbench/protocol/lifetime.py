"""No process outlives the workbench command that started it: a child asks the kernel to kill it when its parent
dies (``PR_SET_PDEATHSIG``), whatever signal ended the parent, SIGKILL included."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In the child (before or after exec): get ``sig`` when the parent dies; exit at once if it already has (the
    parent may have died between fork and this call). Linux only; elsewhere nothing happens."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(1)
