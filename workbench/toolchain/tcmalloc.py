"""tcmalloc (gperftools' ``tcmalloc_minimal``) built from its source release (Debian's ``google-perftools`` source
package by default) into the per-user cache, patched so that the ranges it obtains from the system are kept; Debian's
own library stays available as ``system:tcmalloc``. The recipe is ``native/tcmalloc/``; the machinery is
``source_build``'s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from workbench.toolchain.source_build import BuildLookup, BuiltAllocator, Recipe, build, lookup

# Only the library tcmalloc_minimal needs, built once (no static copy: libtool would compile every file twice).
DEFAULT_CONFIGURE_ARGS = ("--enable-minimal", "--disable-static")

_CHECK_LIBRARY = """
import ctypes, json, sys
library = ctypes.CDLL(sys.argv[1])
library.tc_version.restype = ctypes.c_char_p
major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_char_p()
library.tc_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
value = ctypes.c_size_t()
assert library.MallocExtension_GetNumericProperty(b"generic.current_allocated_bytes", ctypes.byref(value)), \\
    "no statistics"
library.workbench_mapped_ranges.restype = ctypes.c_long
assert library.workbench_mapped_ranges(None, ctypes.c_size_t(0)) > 0, "it records no mapped ranges"
print(json.dumps({"version": f"{major.value}.{minor.value}{(patch.value or b'').decode()}"}))
"""


def _version(text: str) -> str | None:
    """``2.10`` from ``configure.ac`` (``AC_INIT([gperftools],[2.10],[...])``)."""
    match = re.search(r"AC_INIT\(\[gperftools\],\s*\[([^\]]+)\]", text)
    return match.group(1) if match else None


TCMALLOC = Recipe(
    name="tcmalloc", debian_package="google-perftools", library=Path("lib") / "libtcmalloc_minimal.so.4",
    default_args=DEFAULT_CONFIGURE_ARGS,
    # Debian's .orig tarball is a git archive: autotools make its configure script, g++ compiles it.
    build_tools={"g++": "g++", "make": "make", "autoreconf": "autoconf", "automake": "automake",
                 "libtoolize": "libtool"},
    markers=("configure.ac", "src/system-alloc.cc"), version_file="configure.ac", read_version=_version,
    check_script=_CHECK_LIBRARY, prefix_args=("--prefix",), version_example="2.10",
    tarball_example="gperftools-2.10.tar.gz",
)
BUILD_TOOLS = TCMALLOC.tools()


def lookup_tcmalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None) -> BuildLookup:
    """What :func:`ensure_tcmalloc` would find in the cache, read only (see ``source_build.lookup``)."""
    return lookup(TCMALLOC, version, configure_args, source)


def build_tcmalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                   source: Path | None = None, quiet: bool = False) -> tuple[BuiltAllocator, bool]:
    """Like :func:`ensure_tcmalloc`, also telling whether it built (True) or found the build in the cache (False)."""
    return build(TCMALLOC, version, configure_args, source, quiet)


def ensure_tcmalloc(version: str | None = None, configure_args: Sequence[str] | None = None,
                    source: Path | None = None, quiet: bool = False) -> BuiltAllocator:
    """tcmalloc_minimal built from source with ``configure_args`` (default ``--enable-minimal --disable-static``),
    patched to keep the ranges it obtains from the system: from the cache when this recipe, these arguments and this
    source were built before, else built now and cached (see ``source_build.build``)."""
    return build_tcmalloc(version, configure_args, source, quiet)[0]
