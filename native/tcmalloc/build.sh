#!/usr/bin/env bash
# Build gperftools' tcmalloc_minimal shared library from a release source tree into
# PREFIX/lib/libtcmalloc_minimal.so.4.
#   build.sh SOURCE_DIR PREFIX [CONFIGURE_ARGS...]
# Each phase starts with a "==> phase" line, which workbench/toolchain/source_build.py turns into progress.
# This file's content is part of the cache key of every build made with it: a change rebuilds.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 SOURCE_DIR PREFIX [CONFIGURE_ARGS...]" >&2
    exit 64
fi
source_dir=$1
prefix=$2
shift 2

cd "$source_dir"
if [[ ! -f configure ]]; then
    # Debian's .orig tarball is a git archive: no configure script until autotools make it (as Debian's build does).
    echo "==> generating configure"
    autoreconf -fi
fi
echo "==> configuring"
# sh, not ./configure: an unpacked directory may have lost the executable bit.
sh ./configure --prefix="$prefix" "$@"
echo "==> compiling"
# Only tcmalloc_minimal (no profilers, heap checker, debug allocator or tests).
make -j"$(nproc)" libtcmalloc_minimal.la
echo "==> installing"
mkdir -p "$prefix/lib"
# The versioned file (libtcmalloc_minimal.so.4.5.10), under the soname the loader looks for.
library=$(find .libs -maxdepth 1 -name 'libtcmalloc_minimal.so.*.*' -type f | head -n 1)
[[ -n "$library" ]] || { echo "no libtcmalloc_minimal.so.*.* was built" >&2; exit 1; }
cp "$library" "$prefix/lib/libtcmalloc_minimal.so.4"
