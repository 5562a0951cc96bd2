"""Build the allocator probe (native/probe: libworkbench-probe.so and its test program) into the per-user cache.

The cache, under ``cache_dir()/probe``::

    <sha256 of native/probe's sources, 16 hex>/   libworkbench-probe.so, test_probe, build.log (moved in complete)
    .build-probe-*/                               a build in progress (or killed: removed under the lock)
    probe.lock                                    held while building
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from workbench._errors import BadInput, RunFailed
from workbench._resources import cache_dir, native_dir
from workbench.toolchain._lock import exclusive

LIBRARY = "libworkbench-probe.so"
TEST_PROGRAM = "test_probe"
BUILD_LOG = "build.log"
# The command -> the Debian package that provides it.
_TOOLS = {"gcc": "gcc", "make": "make"}


def _sources() -> Path:
    return native_dir() / "probe"


def sources_hash(sources: Path | None = None) -> str:
    """sha256 over every source file of the probe (C, headers, Makefile) with its name: the cache key."""
    sources = sources or _sources()
    digest = hashlib.sha256()
    files = sorted(p for p in sources.iterdir() if p.is_file() and (p.suffix in (".c", ".h") or p.name == "Makefile"))
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _complete(entry: Path) -> bool:
    return (entry / LIBRARY).is_file() and (entry / TEST_PROGRAM).is_file()


def _require_tools() -> None:
    for tool, package in _TOOLS.items():
        if shutil.which(tool) is None:
            raise BadInput(f"{tool} is needed to build the allocator probe on first use: install it "
                           f"(Debian: apt-get install {package})")


def _build(root: Path, entry: Path, quiet: bool) -> None:
    """make into a temporary directory of the cache, then rename it into place (complete or not at all)."""
    if not quiet:
        print(f"Building the allocator probe with gcc (first use; cached in {entry}) ...", file=sys.stderr)
    staging = Path(tempfile.mkdtemp(prefix=".build-probe-", dir=root))
    try:
        log = staging / BUILD_LOG
        with log.open("wb") as out:
            result = subprocess.run(["make", "-C", str(_sources()), f"OUT={staging}"], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300, check=False)
        if result.returncode != 0 or not _complete(staging):
            kept = root / "failed-build.log"
            shutil.copy(log, kept)
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
            raise RunFailed(f"building the allocator probe failed (exit {result.returncode}; log: {kept}):\n{tail}")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the library from a process run as another user
        if entry.exists():
            shutil.rmtree(entry)  # incomplete: the caller found no usable build in it
        os.rename(staging, entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _ensure_entry(quiet: bool) -> Path:
    root = cache_dir() / "probe"
    entry = root / sources_hash()[:16]
    if _complete(entry):
        return entry
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / "probe.lock"):
        if _complete(entry):
            return entry
        for abandoned in root.glob(".build-probe-*"):  # killed builds; none runs while we hold the lock
            shutil.rmtree(abandoned, ignore_errors=True)
        _require_tools()
        _build(root, entry, quiet)
    return entry


def ensure_probe(quiet: bool = False) -> Path:
    """libworkbench-probe.so for these sources: from the cache, or built now with gcc (and cached with its test
    program). A second call runs no compiler. Raises BadInput (exit 2) when gcc or make is missing, RunFailed
    (exit 3) when the build fails."""
    return _ensure_entry(quiet) / LIBRARY


def ensure_probe_test_program(quiet: bool = False) -> Path:
    """The probe's C test program (``test_probe``), built beside the library by :func:`ensure_probe`."""
    return _ensure_entry(quiet) / TEST_PROGRAM
