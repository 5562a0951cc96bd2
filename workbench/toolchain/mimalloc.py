"""mimalloc built from its source release (Debian's ``mimalloc`` source package by default) into the per-user cache,
with its statistics on (``MI_STAT=2``) and patched so that every thread's statistics are the process's at once and
the ranges it maps are kept; Debian's own library, which has no statistics, stays available as ``system:mimalloc``.
The recipe is ``native/mimalloc/``; the machinery is ``source_build``'s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from workbench.toolchain.source_build import BuildLookup, BuiltAllocator, Recipe, build, lookup

DEFAULT_CMAKE_ARGS = ("-DCMAKE_C_FLAGS=-DMI_STAT=2",)

_CHECK_LIBRARY = """
import ctypes, json, sys
library = ctypes.CDLL(sys.argv[1])
library.mi_version.restype = ctypes.c_int
number = library.mi_version()
size, bin_huge = ctypes.c_size_t(), ctypes.c_size_t()
library.workbench_mi_stats.restype = ctypes.c_void_p
assert library.workbench_mi_stats(ctypes.byref(size), ctypes.byref(bin_huge)), "no statistics"
assert library.workbench_mapped_ranges(None, ctypes.c_size_t(0)) > 0, "it records no mapped ranges"
print(json.dumps({"version": f"{number // 100}.{number // 10 % 10}.{number % 10}", "stats_size": size.value}))
"""


def _version(text: str) -> str | None:
    """``2.0.9`` from ``cmake/mimalloc-config-version.cmake`` (``set(mi_version_major 2)`` ...)."""
    parts = [re.search(rf"set\(mi_version_{part}\s+(\d+)\)", text) for part in ("major", "minor", "patch")]
    return ".".join(m.group(1) for m in parts if m is not None) if all(parts) else None


MIMALLOC = Recipe(
    name="mimalloc", debian_package="mimalloc", library=Path("lib") / "libmimalloc.so.2",
    default_args=DEFAULT_CMAKE_ARGS, build_tools={"cmake": "cmake", "make": "make"},
    markers=("CMakeLists.txt", "cmake/mimalloc-config-version.cmake"),
    version_file="cmake/mimalloc-config-version.cmake", read_version=_version, check_script=_CHECK_LIBRARY,
    prefix_args=("-DCMAKE_INSTALL_PREFIX", "-B"), version_example="2.0.9", tarball_example="mimalloc-2.0.9.tar.gz",
)
BUILD_TOOLS = MIMALLOC.tools()


def lookup_mimalloc(version: str | None = None, cmake_args: Sequence[str] | None = None,
                    source: Path | None = None) -> BuildLookup:
    """What :func:`ensure_mimalloc` would find in the cache, read only (see ``source_build.lookup``)."""
    return lookup(MIMALLOC, version, cmake_args, source)


def build_mimalloc(version: str | None = None, cmake_args: Sequence[str] | None = None, source: Path | None = None,
                   quiet: bool = False) -> tuple[BuiltAllocator, bool]:
    """Like :func:`ensure_mimalloc`, also telling whether it built (True) or found the build in the cache (False)."""
    return build(MIMALLOC, version, cmake_args, source, quiet)


def ensure_mimalloc(version: str | None = None, cmake_args: Sequence[str] | None = None, source: Path | None = None,
                    quiet: bool = False) -> BuiltAllocator:
    """mimalloc built from source with ``cmake_args`` (default ``-DCMAKE_C_FLAGS=-DMI_STAT=2``): from the cache when
    this recipe, these arguments and this source were built before, else built now and cached (see
    ``source_build.build``)."""
    return build_mimalloc(version, cmake_args, source, quiet)[0]
