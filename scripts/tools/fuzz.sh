#!/usr/bin/env bash
# Fuzzes every reader of outside bytes with libFuzzer, one target at a time (README "Robustness").
#   scripts/tools/fuzz.sh [SECONDS] [READER...]   # default: 600 s for each of fuzz/fuzz_*.cpp
#   FUZZ_BUILD_DIR=build-fuzz  FUZZ_JOBS=2  FUZZ_NICE=10  FUZZ_RSS_MB=4096   (environment overrides)
# Configures and builds $FUZZ_BUILD_DIR (clang, -DVCPCLIP_FUZZ=ON: ASan + UBSan + libFuzzer) when
# needed. Each target starts from fuzz/corpus/<reader> and fuzz/regressions/<reader>; the inputs it
# finds go to $FUZZ_BUILD_DIR/fuzz/new/<reader> (not committed). A crash, leak, sanitizer report,
# timeout or out-of-memory stops the script with status 1 and leaves the input at
# $FUZZ_BUILD_DIR/fuzz/crash-<reader>-*: fix the reader, then commit the input to
# fuzz/regressions/<reader>/ (the replay tests run it in every build from then on).
# Prints, per target: executions, executions/s, coverage (libFuzzer cov = edges, ft = features),
# corpus size and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-600}
[ $# -gt 0 ] && shift
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${FUZZ_JOBS:-2}
NICE=${FUZZ_NICE:-10}
RSS=${FUZZ_RSS_MB:-4096}
READERS=("$@")
if [ ${#READERS[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.cpp; do r=$(basename "$f" .cpp); READERS+=("${r#fuzz_}"); done
fi

export CCACHE_BASEDIR="$(pwd)" CCACHE_NOHASHDIR=true
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DVCPCLIP_FUZZ=ON >/dev/null
fi
targets=()
for r in "${READERS[@]}"; do targets+=("fuzz_$r"); done
nice -n "$NICE" cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
summary=()
status=0
for r in "${READERS[@]}"; do
  new="$BUILD/fuzz/new/$r"
  mkdir -p "$new" "fuzz/regressions/$r"
  log="$BUILD/fuzz/fuzz_$r.log"
  echo "fuzz: $r for ${SECS} s (log $log)"
  if ! nice -n "$NICE" "$BUILD/fuzz/fuzz_$r" -max_total_time="$SECS" -rss_limit_mb="$RSS" -timeout=30 \
      -print_final_stats=1 -artifact_prefix="$BUILD/fuzz/crash-$r-" "$new" "fuzz/corpus/$r" "fuzz/regressions/$r" \
      >"$log" 2>&1; then
    status=1
    echo "fuzz: $r FAILED:"
    grep -aE "ERROR|SUMMARY|fuzz: |Test unit written" "$log" | head -n 20 || tail -n 30 "$log"
  fi
  # The last status line ("#N DONE", or the last progress line when a finding stopped the run).
  done_line=$(grep -aE "^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse)" "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb:[[:space:]]*//p' "$log" | tail -n 1)
  cov=$(echo "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$done_line" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$done_line" | sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')
  summary+=("$(printf '%-12s %10s execs %7s exec/s  cov %6s  ft %7s  corpus %-12s rss %5s MB' "$r" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}")")
done
echo
printf '%s\n' "${summary[@]}"
exit $status
