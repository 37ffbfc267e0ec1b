#!/usr/bin/env bash
# Installs what only the tests need (run by scripts/test.sh; idempotent, quiet when all is there):
#   - Debian packages: chromium (headless browser tests of the HTML reports and the serve page),
#     clang-format (SourceTree.Formatted), python3-regex (UnicodeTables.MatchTheirScript), npm;
#   - npm's playwright-core into tests/browser/node_modules (drives Debian's chromium; it downloads
#     no browser of its own).
#   VCPCLIP_NO_APT=1 scripts/test_deps.sh   # skip the package step
set -euo pipefail
cd "$(dirname "$0")/.."

TEST_PKGS=(chromium clang-format python3-regex)
command -v npm >/dev/null || TEST_PKGS+=(npm)

if [ -z "${VCPCLIP_NO_APT:-}" ]; then
  missing=()
  for p in "${TEST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test-deps: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# playwright-core, pinned (tests/browser/package.json); never downloads a browser.
if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
  echo "test-deps: installing playwright-core (npm)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent >/dev/null)
fi
