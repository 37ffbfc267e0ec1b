#!/usr/bin/env bash
# Checks scripts/check_skips.py (the skip check of scripts/test.sh) on a recorded ctest report
# (tests/fixtures/skips/four_skips.xml): the three skips of tests/skip_allowlist.txt pass, a
# fourth one fails under CI=true naming the test and its reason and only warns otherwise, the
# closing line counts passed/failed/skipped, and an allowlist entry without a reason is refused.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
check="$root/scripts/check_skips.py"
report="$root/tests/fixtures/skips/four_skips.xml"
allow="$root/tests/skip_allowlist.txt"
fail() { printf "FAIL: %b\n" "$*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$(CI=true python3 "$check" "$report" "$allow") && fail "CI=true accepted a fourth skip:\n$out"
grep -qx "error: CI=true and 1 skip(s) that $allow does not allow:" <<<"$out" || fail "no error line:\n$out"
grep -qx "  SourceTree.Formatted: clang-format not found" <<<"$out" || fail "test and reason not named:\n$out"
grep -qx "skipped (allowed: needs a CUDA device: runs on GPU machines, skips on CPU-only ones): ClipParity.CudaMatchesGoldenToo: no CUDA device" <<<"$out" ||
  fail "allowed skip not listed with its reason:\n$out"
[ "$(tail -n1 <<<"$out")" = "1 passed, 1 failed, 4 skipped" ] || fail "last line: $(tail -n1 <<<"$out")"

out=$(CI= python3 "$check" "$report" "$allow") || fail "without CI an unlisted skip must only warn:\n$out"
grep -q "^warning: 1 skip(s) that .* does not allow (an error under CI=true):" <<<"$out" || fail "no warning:\n$out"

# The three allowed skips alone pass under CI=true.
python3 - "$report" "$tmp/three.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
t = ET.parse(sys.argv[1]); root = t.getroot()
for c in list(root):
    if c.get("name") == "SourceTree.Formatted":
        root.remove(c)
t.write(sys.argv[2])
PY
out=$(CI=true python3 "$check" "$tmp/three.xml" "$allow") || fail "the three allowed skips failed under CI=true:\n$out"
[ "$(tail -n1 <<<"$out")" = "1 passed, 1 failed, 3 skipped" ] || fail "last line: $(tail -n1 <<<"$out")"

# An allowlist entry must give its reason.
printf 'ClipParity.CudaMatchesGoldenToo\n' >"$tmp/bad.txt"
out=$(python3 "$check" "$report" "$tmp/bad.txt" 2>&1) && fail "an entry without a reason was accepted"
grep -q "has no reason" <<<"$out" || fail "unclear message: $out"
echo "skip check: a fourth skip fails under CI=true, the allowed three pass"
