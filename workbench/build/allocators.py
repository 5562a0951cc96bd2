"""Which library to preload for an allocator name: found on the system, never at a hard-coded path."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from workbench._errors import BadInput


@dataclass(frozen=True)
class AllocatorChoice:
    name: str
    library: Path | None  # None: nothing preloaded (glibc's malloc)
    expected_backend: str | None  # what the worker must find answering malloc; None for a user's own library


# name -> (soname, Debian package, backend the probe should then detect)
_SYSTEM = {"jemalloc": ("libjemalloc.so.2", "libjemalloc2", "jemalloc")}
NAMES = ("jemalloc", "glibc")


def _ldconfig_paths() -> dict[str, Path]:
    try:
        out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    found: dict[str, Path] = {}
    for line in out.splitlines()[1:]:
        name, _, path = line.strip().partition(" => ")
        soname, _, flags = name.partition(" (")
        if "x86-64" in flags or "64bit" in flags or "AArch64" in flags:
            found.setdefault(soname, Path(path))
    return found


def resolve_allocator(name: str) -> AllocatorChoice:
    """The library for ``jemalloc`` (the system's), ``glibc`` (nothing) or a path to a shared library."""
    if name == "glibc":
        return AllocatorChoice("glibc", None, "glibc")
    if name in _SYSTEM:
        soname, package, backend = _SYSTEM[name]
        path = _ldconfig_paths().get(soname)
        if path is None:
            raise BadInput(
                f"--allocator {name}: {soname} is not installed; install the Debian package {package} "
                f"(apt-get install {package}) or use --allocator glibc"
            )
        return AllocatorChoice(name, path, backend)
    path = Path(name)
    if "/" in name or name.endswith(".so") or ".so." in name:
        if not path.is_file():
            raise BadInput(f"--allocator {name}: no such file (expected a shared library to preload)")
        return AllocatorChoice(str(path.resolve()), path.resolve(), None)
    raise BadInput(f"--allocator {name}: unknown allocator (expected one of: {', '.join(NAMES)}, or a path to a .so)")
