#!/usr/bin/env bash
# Build jemalloc's shared library and headers from a release source tree into PREFIX.
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
echo "==> configuring"
# sh, not ./configure: an unpacked directory may have lost the executable bit.
sh ./configure --prefix="$prefix" "$@"
echo "==> compiling"
# Only the shared library: the static one would compile every file a second time.
make -j"$(nproc)" build_lib_shared
echo "==> installing"
make install_lib_shared install_include
