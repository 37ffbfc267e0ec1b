#!/usr/bin/env bash
# Checks that every C++ source of the project is formatted as .clang-format says (clang-format 14,
# the version Debian 12 ships; other versions can format differently). Lists the files that are
# not and how to fix them. Skips (exit 77) when clang-format is missing. Generated tables are not
# checked (src/model/unicode_tables.cpp is checked against its generator instead).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cf=""
for c in clang-format-14 clang-format; do command -v "$c" >/dev/null 2>&1 && { cf=$c; break; }; done
[ -n "$cf" ] || { echo "SKIP: clang-format not found"; exit 77; }
case "$("$cf" --version)" in
  *"version 14."*) ;;
  *) echo "SKIP: $("$cf" --version) is not clang-format 14"; exit 77 ;;
esac
bad=()
while IFS= read -r f; do
  "$cf" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.cpp' '*.h' 2>/dev/null | grep -v '^src/model/unicode_tables.cpp$' ||
         find src include tests bench examples fuzz -name '*.cpp' -o -name '*.h' 2>/dev/null)
if [ ${#bad[@]} -gt 0 ]; then
  printf 'not formatted as .clang-format says: %s\n' "${bad[@]}"
  echo "fix: $cf -i <files>"
  exit 1
fi
echo "all C++ sources formatted ($cf)"
