"""Build the allocator probe (native/probe: libworkbench-probe.so and its test program) into the per-user cache.

The cache, under ``cache_dir()/probe`` (see :mod:`workbench.toolchain.cache`)::

    <sha256 of native/probe's sources, 16 hex>/   libworkbench-probe.so, test_probe, build.log (moved in complete)
    .build-probe-*/                               a build in progress (or killed: removed under the lock)
    failed-<entry>.log                            the log of the last failed build
    probe.lock                                    held while building
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from workbench._resources import native_dir
from workbench.toolchain.cache import BuildArea, BuildFailed, probe_dir, require_tools

LIBRARY = "libworkbench-probe.so"
TEST_PROGRAM = "test_probe"
BUILD_LOG = "build.log"
# The command -> the Debian package that provides it.
BUILD_TOOLS = {"gcc": "gcc", "make": "make"}


def _sources() -> Path:
    return native_dir() / "probe"


def _area() -> BuildArea:
    return BuildArea(probe_dir(), lock_name="probe.lock", staging_prefix=".build-probe-", log_name=BUILD_LOG)


def sources_hash(sources: Path | None = None) -> str:
    """sha256 over every source file of the probe (C, headers, Makefile) with its name: the cache key."""
    sources = sources or _sources()
    digest = hashlib.sha256()
    files = sorted(p for p in sources.iterdir() if p.is_file() and (p.suffix in (".c", ".h") or p.name == "Makefile"))
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _entry() -> Path:
    return probe_dir() / sources_hash()[:16]


def _complete(entry: Path) -> bool:
    # An entry is moved in whole, so both files there mean a finished build (the probe has no manifest).
    return (entry / LIBRARY).is_file() and (entry / TEST_PROGRAM).is_file()


def _make(staging: Path, log: Path) -> None:
    with log.open("wb") as out:
        result = subprocess.run(["make", "-C", str(_sources()), f"OUT={staging}"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300, check=False)
    if result.returncode != 0 or not _complete(staging):
        raise BuildFailed(f"building the allocator probe failed (exit {result.returncode})")


def _ensure_entry(quiet: bool) -> Path:
    entry = _entry()
    if _complete(entry):
        return entry
    with _area().locked() as area:
        if _complete(entry):
            return entry
        require_tools(BUILD_TOOLS, "to build the allocator probe on first use")
        if not quiet:
            print(f"Building the allocator probe with gcc (first use; cached in {entry}) ...", file=sys.stderr)
        area.build(entry, _make)
    return entry


def ensure_probe(quiet: bool = False) -> Path:
    """libworkbench-probe.so for these sources: from the cache, or built now with gcc (and cached with its test
    program). A second call runs no compiler. Raises BadInput (exit 2) when gcc or make is missing, RunFailed
    (exit 3) when the build fails."""
    return _ensure_entry(quiet) / LIBRARY


def ensure_probe_test_program(quiet: bool = False) -> Path:
    """The probe's C test program (``test_probe``), built beside the library by :func:`ensure_probe`."""
    return _ensure_entry(quiet) / TEST_PROGRAM
