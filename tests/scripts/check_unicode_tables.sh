#!/usr/bin/env bash
# Checks that src/model/unicode_tables.cpp is what scripts/tools/make_unicode_tables.py generates. The
# tables depend on the Unicode data of Python and of the `regex` module:
#  - with the versions recorded in the file's header (line 2), the output must equal the file;
#  - with other versions, the difference must equal the one recorded for those versions in
#    tests/fixtures/unicode_tables/<versions>.diff (`diff <generated> <committed>`). Recorded:
#    Debian 12's python3 3.11.2 + python3-regex 2.5.123, whose regex knows an older Unicode than
#    the header's: only the letter / number / other split ranges differ (code points assigned
#    after its Unicode version), the tables from Python's own unicodedata are identical.
# Every python3 that can import regex (VCPCLIP_PYTHON, python3 on PATH, /usr/bin/python3) is
# checked; skips (exit 77), naming the versions it found, only when none has recorded versions.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tables="$root/src/model/unicode_tables.cpp"
want=$(sed -n 2p "$tables" | sed 's|^// ||')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checked=0 seen="" found=""
for py in ${VCPCLIP_PYTHON:-} python3 /usr/bin/python3; do
  exe=$(command -v "$py" 2>/dev/null) || continue
  have=$("$exe" -c 'import sys, unicodedata, regex
print("Python %d.%d.%d, unicodedata %s, regex %s." % (sys.version_info[:3] + (unicodedata.unidata_version, regex.__version__)))' \
         2>/dev/null) || continue
  case " $seen " in *" $have "*) continue ;; esac   # the same interpreter under another name
  seen="$seen $have"
  found="$found${found:+; }$exe: $have"
  recorded="$root/tests/fixtures/unicode_tables/$(sed -E 's/^Python ([^,]+), unicodedata ([^,]+), regex (.+)\.$/python-\1_unicodedata-\2_regex-\3/' <<<"$have").diff"
  [ "$have" = "$want" ] || [ -f "$recorded" ] || continue
  "$exe" "$root/scripts/tools/make_unicode_tables.py" --out "$tmp/gen.cpp" >/dev/null
  if [ "$have" = "$want" ]; then
    if ! diff -q "$tmp/gen.cpp" "$tables" >/dev/null; then
      echo "src/model/unicode_tables.cpp differs from what scripts/tools/make_unicode_tables.py generates ($have):"
      diff "$tmp/gen.cpp" "$tables" | head -n 20
      exit 1
    fi
    echo "unicode tables equal scripts/tools/make_unicode_tables.py's output ($exe: $have)"
  else
    diff "$tmp/gen.cpp" "$tables" >"$tmp/got.diff" || true
    if ! cmp -s "$tmp/got.diff" "$recorded"; then
      echo "src/model/unicode_tables.cpp: the difference from scripts/tools/make_unicode_tables.py's output ($exe: $have)"
      echo "is not the one recorded in ${recorded#"$root"/}; differences between the two diffs:"
      diff "$tmp/got.diff" "$recorded" | head -n 20
      exit 1
    fi
    echo "unicode tables equal scripts/tools/make_unicode_tables.py's output up to the recorded ${recorded#"$root"/} ($exe: $have)"
  fi
  checked=$((checked + 1))
done
[ "$checked" -gt 0 ] && exit 0
echo "SKIP: no python3 with regex of the generator's versions ($want) or of a recorded difference (tests/fixtures/unicode_tables/); found: ${found:-none}"
exit 77
