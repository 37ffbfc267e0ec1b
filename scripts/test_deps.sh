#!/usr/bin/env bash
# Installs what only the tests need (run by scripts/test.sh; idempotent, quiet when all is there):
#   - Debian packages: chromium (headless browser tests of the HTML reports and the serve page),
#     clang-format (SourceTree.Formatted), python3-regex (UnicodeTables.MatchTheirScript), npm;
#   - npm's playwright-core into tests/browser/node_modules (drives Debian's chromium; it downloads
#     no browser of its own).
#   VCPCLIP_NO_APT=1 scripts/test_deps.sh   # skip the package step
set -euo pipefail
cd "$(dirname "$0")/.."

TEST_PKGS=(chromium clang-format python3-regex curl)
command -v npm >/dev/null || TEST_PKGS+=(npm)

. scripts/apt_install.sh
apt_install_missing test-deps "${TEST_PKGS[@]}"

# playwright-core, pinned (tests/browser/package.json); never downloads a browser.
if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
  echo "test-deps: installing playwright-core (npm)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent >/dev/null)
fi
