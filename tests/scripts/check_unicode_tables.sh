#!/usr/bin/env bash
# Checks that src/model/unicode_tables.cpp is exactly what scripts/make_unicode_tables.py generates.
# The tables depend on the Unicode data of Python and of the `regex` module, so the check runs with
# an interpreter whose versions equal the ones recorded in the file's header; without one it skips
# (exit 77) and says which versions it needs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tables="$root/src/model/unicode_tables.cpp"
want=$(sed -n 2p "$tables" | sed 's|^// ||')
for py in ${VCPCLIP_PYTHON:-} python3 /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  have=$("$py" -c 'import sys, unicodedata, regex
print("Python %d.%d.%d, unicodedata %s, regex %s." % (sys.version_info[:3] + (unicodedata.unidata_version, regex.__version__)))' \
         2>/dev/null) || continue
  if [ "$have" = "$want" ]; then
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    "$py" "$root/scripts/make_unicode_tables.py" --out "$out" >/dev/null
    if ! diff -q "$out" "$tables" >/dev/null; then
      echo "src/model/unicode_tables.cpp differs from what scripts/make_unicode_tables.py generates ($have):"
      diff "$out" "$tables" | head -n 20
      exit 1
    fi
    echo "unicode tables match scripts/make_unicode_tables.py ($have)"
    exit 0
  fi
done
echo "SKIP: no python3 with the generator's versions ($want)"
exit 77
