#!/usr/bin/env bash
# The test command: builds the test executables (one per area; nothing that is up to date is
# rebuilt) and runs every test. Extra arguments go to ctest, e.g. `scripts/test.sh -L quick`.
#   BUILD_DIR=b scripts/test.sh      # another build folder (default: build, made by setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/CMakeCache.txt" ] || { echo "test: no $BUILD_DIR/ yet: run scripts/setup.sh first" >&2; exit 1; }
scripts/test_deps.sh
export CCACHE_BASEDIR="$(pwd)" CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake --build "$BUILD_DIR" --target tests -j"$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
