"""jemalloc built from its source release (Debian's ``jemalloc`` source package by default) into the per-user cache:
the recipe (``native/jemalloc/``) and the entry points the rest of the workbench calls; the machinery is
``source_build``'s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from workbench.toolchain.source_build import BuildLookup, BuiltAllocator, Recipe, build, lookup

DEFAULT_CONFIGURE_ARGS = ("--enable-prof",)

_CHECK_LIBRARY = """
import ctypes, json, sys
library = ctypes.CDLL(sys.argv[1])
version, size = ctypes.c_char_p(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_char_p))
assert library.mallctl(b"version", ctypes.byref(version), ctypes.byref(size), None, ctypes.c_size_t(0)) == 0
prof, size = ctypes.c_bool(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_bool))
assert library.mallctl(b"config.prof", ctypes.byref(prof), ctypes.byref(size), None, ctypes.c_size_t(0)) == 0
assert library.je_workbench_mapped_ranges(None, ctypes.c_size_t(0)) > 0, "it records no mapped ranges"
print(json.dumps({"version": version.value.decode(), "config.prof": prof.value}))
"""


def _version(text: str) -> str | None:
    """``5.3.0`` from a release's VERSION file (``5.3.0-0-g54eaed1d...``)."""
    match = re.match(r"\s*([^-\s]+)", text)
    return match.group(1) if match else None


JEMALLOC = Recipe(
    name="jemalloc", debian_package="jemalloc", library=Path("lib") / "libjemalloc.so.2",
    default_args=DEFAULT_CONFIGURE_ARGS, build_tools={"make": "make"}, markers=("configure", "VERSION"),
    version_file="VERSION", read_version=_version, check_script=_CHECK_LIBRARY, prefix_args=("--prefix",),
    version_example="5.3.0", tarball_example="jemalloc-5.3.0.tar.bz2",
    checkout_hint=("configure.ac", "run ./autogen.sh in it first"),
)
# The command -> the Debian package that provides it.
BUILD_TOOLS = JEMALLOC.tools()
JemallocLookup = BuildLookup


def lookup_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None) -> BuildLookup:
    """What :func:`ensure_jemalloc` with these arguments would find in the cache, read only (see
    ``source_build.lookup``)."""
    return lookup(JEMALLOC, version, configure_args, source)


def cached_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None) -> BuiltAllocator | None:
    """The build :func:`ensure_jemalloc` would return from the cache, or None when it would build; never builds."""
    return lookup_jemalloc(version, configure_args, source).built


def build_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                   source: Path | None = None, quiet: bool = False) -> tuple[BuiltAllocator, bool]:
    """Like :func:`ensure_jemalloc`, also telling whether it built (True) or found the build in the cache (False)."""
    return build(JEMALLOC, version, configure_args, source, quiet)


def ensure_jemalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None, quiet: bool = False) -> BuiltAllocator:
    """jemalloc built from source with ``configure_args`` (default ``--enable-prof``), patched to keep the ranges it
    maps: from the cache when this recipe, these arguments and this source were built before, else built now and
    cached (see ``source_build.build``). Raises BadInput (exit 2) for what the user can fix, RunFailed (exit 3) when
    the build fails."""
    return build_jemalloc(version, configure_args, source, quiet)[0]
