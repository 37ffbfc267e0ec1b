#!/usr/bin/env bash
# The test command: builds the test executables (one per area; nothing that is up to date is
# rebuilt) and runs every test. Extra arguments go to ctest, e.g. `scripts/test.sh -L quick`.
# Then every skipped test is listed with its reason and checked against tests/skip_allowlist.txt
# (scripts/check_skips.py): under CI=true a skip the list does not allow fails the run. The last
# line is "N passed, N failed, N skipped".
#   BUILD_DIR=b scripts/test.sh      # another build folder (default: build, made by setup.sh)
#   CI=true scripts/test.sh          # unlisted skips are errors
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/CMakeCache.txt" ] || { echo "test: no $BUILD_DIR/ yet: run scripts/setup.sh first" >&2; exit 1; }
scripts/test_deps.sh
export CCACHE_BASEDIR="$(pwd)" CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
cmake --build "$BUILD_DIR" --target tests -j"$(nproc)"
case "$BUILD_DIR" in /*) junit="$BUILD_DIR/ctest-junit.xml" ;; *) junit="$(pwd)/$BUILD_DIR/ctest-junit.xml" ;; esac
rm -f "$junit"
rc=0
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --output-junit "$junit" "$@" || rc=$?
[ -f "$junit" ] || { echo "test: ctest wrote no report ($junit)" >&2; exit $(( rc ? rc : 1 )); }
skips=0
python3 scripts/check_skips.py "$junit" tests/skip_allowlist.txt || skips=$?
exit $(( rc ? rc : skips ))
