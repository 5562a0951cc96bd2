"""The environment of a measured process: what is preloaded, the allocator's settings, and the check that the preload
took effect. Scenario runs, `exec` and `doctor`'s children all build theirs here."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from workbench.report.model import RunError
from workbench.toolchain.allocators import AllocatorChoice

# The directory that holds the workbench package, for Python children (`python -m workbench.worker`).
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
# Variables that change what a measured process allocates with; never inherited from the caller's environment.
_ALLOCATOR_VARIABLES = ("LD_PRELOAD", "MALLOC_CONF")


def preload_environment(preload: Sequence[Path], malloc_conf: str | None = None,
                        extra: Mapping[str, str] | None = None, python: bool = False) -> dict[str, str]:
    """This process's environment with ``preload`` (in that order) as LD_PRELOAD and ``malloc_conf`` as MALLOC_CONF.

    The caller's own LD_PRELOAD and MALLOC_CONF are dropped: what is measured is what the run says it measured.
    ``python`` puts the workbench package on PYTHONPATH, for a Python child.
    """
    env = {key: value for key, value in os.environ.items() if key not in _ALLOCATOR_VARIABLES}
    if preload:
        env["LD_PRELOAD"] = ":".join(str(path) for path in preload)
    if malloc_conf:
        env["MALLOC_CONF"] = malloc_conf
    if python:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def allocator_preload(choice: AllocatorChoice) -> list[Path]:
    """The libraries to preload for an allocator: none for glibc's malloc."""
    return [choice.library] if choice.library is not None else []


def preload_mismatch(choice: AllocatorChoice, backend: str | None, library: str | None) -> RunError | None:
    """A failure when the allocator answering malloc in the process is not the one asked for; None when it is (or
    when nothing could be detected, or a user's own library was preloaded, which has no expected backend)."""
    expected = choice.expected_backend
    if backend is None or expected is None or backend == expected:
        return None
    return RunError(
        type="AllocatorMismatch",
        message=f"asked for {choice.name}, but malloc in the process is {backend}'s ({library}): the preload did "
                "not take effect",
    )
