#!/usr/bin/env bash
# Build mimalloc's shared library from a release source tree into PREFIX/lib/libmimalloc.so.2.
#   build.sh SOURCE_DIR PREFIX [CMAKE_ARGS...]
# Each phase starts with a "==> phase" line, which workbench/toolchain/source_build.py turns into progress.
# This file's content is part of the cache key of every build made with it: a change rebuilds.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 SOURCE_DIR PREFIX [CMAKE_ARGS...]" >&2
    exit 64
fi
source_dir=$1
prefix=$2
shift 2

echo "==> configuring"
# Release, the shared library only (no static or object library, no tests).
cmake -S "$source_dir" -B "$source_dir/out" -DCMAKE_BUILD_TYPE=Release -DMI_BUILD_SHARED=ON -DMI_BUILD_STATIC=OFF \
    -DMI_BUILD_OBJECT=OFF -DMI_BUILD_TESTS=OFF "$@"
echo "==> compiling"
cmake --build "$source_dir/out" -j"$(nproc)"
echo "==> installing"
mkdir -p "$prefix/lib"
# The versioned file (libmimalloc.so.2.0), under the soname the loader looks for.
library=$(find "$source_dir/out" -maxdepth 1 -name 'libmimalloc.so.*.*' -type f | head -n 1)
[[ -n "$library" ]] || { echo "no libmimalloc.so.*.* was built" >&2; exit 1; }
cp "$library" "$prefix/lib/libmimalloc.so.2"
