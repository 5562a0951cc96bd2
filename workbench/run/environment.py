"""The environment of a measured process: what is preloaded, the allocator's settings, and the check that the preload
took effect. Scenario runs, `exec` and `doctor`'s children all build theirs here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from workbench._errors import BadInput
from workbench.report.model import RunError
from workbench.toolchain.allocators import AllocatorChoice, check_allocator, ready_allocator
from workbench.toolchain.elf import NotAnAllocator, defined_functions

# The directory that holds the workbench package, for Python children (`python -m workbench.worker`).
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
# Variables that change what a measured process allocates with; never inherited from the caller's environment.
_ALLOCATOR_VARIABLES = ("LD_PRELOAD", "MALLOC_CONF")


def preload_environment(preload: Sequence[Path], malloc_conf: str | None = None,
                        extra: Mapping[str, str] | None = None, python: bool = False) -> dict[str, str]:
    """This process's environment with ``preload`` (in that order) as LD_PRELOAD and ``malloc_conf`` as MALLOC_CONF.

    The caller's own LD_PRELOAD and MALLOC_CONF are dropped: what is measured is what the run says it measured.
    ``python`` puts the workbench package on PYTHONPATH, for a Python child, and turns pymalloc off
    (PYTHONMALLOC=malloc): Python's own objects then go through the measured allocator, whose mappings the ledger
    finds by address, instead of pymalloc's arenas, whose resident pages no statistic gives (measured on
    intvector-large under jemalloc, JDK 17: 1,490,944 B unexplained at 'closed' with pymalloc, 4,096 B without).
    """
    env = {key: value for key, value in os.environ.items() if key not in _ALLOCATOR_VARIABLES}
    if preload:
        env["LD_PRELOAD"] = ":".join(str(path) for path in preload)
    if malloc_conf:
        env["MALLOC_CONF"] = malloc_conf
    if python:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
        env["PYTHONMALLOC"] = "malloc"
    env.update(extra or {})
    return env


def allocator_preload(choice: AllocatorChoice) -> list[Path]:
    """The libraries to preload for an allocator: none for glibc's malloc."""
    return [choice.library] if choice.library is not None else []


def _same_file(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def preload_mismatch(choice: AllocatorChoice, backend: str | None, library: str | None) -> RunError | None:
    """A failure when the allocator answering malloc in the process is not the one asked for; None when it is (or
    when nothing could be detected).

    A preloaded library must be the very file malloc resolves into (dladdr of malloc in the measured process): the
    dynamic linker skips a library it cannot preload with one line on stderr and goes on with glibc's malloc."""
    expected = choice.expected_backend
    if backend is None:
        return None
    if expected is not None and backend != expected:
        return RunError(
            type="AllocatorMismatch",
            message=f"asked for {choice.name}, but malloc in the process is {backend}'s ({library}): the preload did "
                    "not take effect",
        )
    if choice.library is not None and (library is None or not _same_file(library, choice.library)):
        return RunError(
            type="AllocatorMismatch",
            message=f"asked for {choice.name}, but malloc in the process resolves into {library} ({backend}), not "
                    f"{choice.library}: the preload did not take effect (the dynamic linker could not preload it, "
                    "or it does not replace malloc)",
        )
    return None


# What jemalloc prints on stderr for a MALLOC_CONF it does not take (and then goes on without it).
_JEMALLOC_CONF_COMPLAINT = re.compile(r"^<jemalloc>: ((?:Invalid conf|Malformed conf|Conf string ends).*)$",
                                      re.MULTILINE)
_CONF_TRIAL = "import os; os._exit(0)"  # any malloc makes jemalloc read its conf; exit skips stats_print/prof_final


def reads_malloc_conf(choice: AllocatorChoice) -> bool:
    """Whether the allocator is a jemalloc (built, Debian's, or a file that exports mallctl), the one that reads
    MALLOC_CONF."""
    if choice.expected_backend == "jemalloc":
        return True
    if choice.expected_backend is not None or choice.library is None:
        return False
    try:
        return "mallctl" in defined_functions(choice.library, ("mallctl",))
    except (NotAnAllocator, OSError):
        return False


def check_malloc_conf(choice: AllocatorChoice, malloc_conf: str | None, option: str = "--malloc-conf") -> None:
    """BadInput (exit 2, naming ``option`` and the pair) unless the allocator takes ``malloc_conf`` whole.

    Only jemalloc reads MALLOC_CONF, and it goes on without a pair it refuses (one ``<jemalloc>: Invalid conf pair``
    line on stderr): so a tiny process with the allocator and the conf is started, and what jemalloc says is
    read. About 10 ms; it runs in an empty temporary directory, with any profile dumps sent there."""
    if not malloc_conf:
        return
    if not reads_malloc_conf(choice):
        raise BadInput(f"{option} {malloc_conf}: only jemalloc reads MALLOC_CONF, and the allocator is "
                       f"{choice.name}, which would ignore it")
    assert choice.library is not None
    with tempfile.TemporaryDirectory(prefix="workbench-conf-") as scratch:
        trial = malloc_conf
        if "prof" in malloc_conf:  # a dump from this process goes nowhere the user would look
            trial += f",prof_prefix:{scratch}/jeprof"
        env = preload_environment([choice.library], trial)
        try:
            result = subprocess.run([sys.executable, "-I", "-S", "-c", _CONF_TRIAL], env=env, cwd=scratch,
                                    capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
                                    timeout=60, check=False)
        except subprocess.TimeoutExpired:
            raise BadInput(f"{option} {malloc_conf}: a process with it did not start within 60 s") from None
    complaint = conf_complaint(result.stderr)
    if complaint is not None:
        raise BadInput(f"{option} {malloc_conf}: jemalloc refuses it ({complaint})")
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise BadInput(f"{option} {malloc_conf}: a process with it failed ({last})")


def conf_complaint(stderr: str) -> str | None:
    """jemalloc's first complaint about its MALLOC_CONF in a process's stderr (``Invalid conf pair: nonsense:1``)."""
    found = _JEMALLOC_CONF_COMPLAINT.search(stderr)
    return found.group(1) if found else None


def _same_value(asked: str, effective: object) -> bool:
    if isinstance(effective, bool):
        return asked.lower() == str(effective).lower()
    if isinstance(effective, int):
        try:
            return int(asked) == effective
        except ValueError:
            return False
    if isinstance(effective, str):
        try:
            return asked == effective or float(asked) == float(effective)
        except ValueError:
            return False
    return False


def malloc_conf_finding(settings: list[dict[str, object]] | None, log_text: str,
                        option: str = "--malloc-conf") -> RunError | None:
    """A failure when jemalloc in the measured process refused its MALLOC_CONF: a complaint in its log, or an
    ``opt.*`` value read back that is not the one asked for (an option jemalloc does not report is not judged)."""
    complaint = conf_complaint(log_text)
    if complaint is not None:
        return RunError(type="MallocConfRejected", message=f"{option}: jemalloc in the process refused it "
                                                           f"({complaint}) and ran without it")
    for setting in settings or []:
        effective = setting.get("effective")
        if effective is not None and not _same_value(str(setting["asked"]), effective):
            return RunError(type="MallocConfRejected",
                            message=f"{option}: asked for {setting['key']}:{setting['asked']}, but jemalloc in the "
                                    f"process uses {setting['key']}:{effective}")
    return None


def check_scenario_allocator(allocator: str, malloc_conf: str | None, source: str) -> None:
    """What a run checks of a scenario file's ``allocator`` and ``malloc_conf`` before it starts, with the same
    messages, for ``validate``; builds nothing (a conf for a jemalloc not built yet is checked by the run)."""
    option = f"{source}: allocator"
    check_allocator(allocator, option)
    if malloc_conf:
        choice = ready_allocator(allocator, option)
        if choice is not None:
            check_malloc_conf(choice, malloc_conf, f"{source}: malloc_conf")
