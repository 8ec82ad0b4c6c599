#!/usr/bin/env bash
# Installs what the dashboard's browser test needs: Debian's Chromium (/usr/bin/chromium, from apt)
# and playwright-core (pinned in tests/dashboard/package.json and package-lock.json) into
# .deps/playwright/node_modules. playwright-core ships no browser and downloads none; the test
# launches /usr/bin/chromium through it. Idempotent: returns at once when both are present.
# Needs root for apt-get (only when Chromium is missing), node and npm (the registry only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.deps/playwright"
version=1.64.1
pkg="$prefix/node_modules/playwright-core"
chromium=/usr/bin/chromium

if [ ! -x "$chromium" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
  [ -x "$chromium" ] || { echo "install-browser.sh: apt-get installed chromium but $chromium is missing" >&2; exit 1; }
fi

check() {
  grep -q "\"version\": \"$version\"" "$pkg/package.json" 2>/dev/null || return 1
  (cd "$prefix" && node -e "const { chromium } = require('playwright-core'); if (typeof chromium.launchPersistentContext !== 'function') throw new Error('no chromium')") >/dev/null 2>&1
}

if check; then
  echo "chromium at $chromium; playwright-core $version present under ${prefix#"$root"/}/node_modules"
  exit 0
fi

command -v node >/dev/null || { echo "install-browser.sh: node not found (apt-get install nodejs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-browser.sh: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$prefix"
cp "$root/tests/dashboard/package.json" "$root/tests/dashboard/package-lock.json" "$prefix/"
# --ignore-scripts and PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: no browser build is fetched, ever.
(cd "$prefix" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) || {
  echo "install-browser.sh: npm ci failed in ${prefix#"$root"/}; retrying with output" >&2
  (cd "$prefix" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund) >&2
  exit 1
}
if ! check; then
  echo "install-browser.sh: playwright-core $version installed but does not load" >&2
  (cd "$prefix" && node -e "require('playwright-core')") >&2 || true
  exit 1
fi
echo "chromium at $chromium; playwright-core $version installed under ${prefix#"$root"/}/node_modules"
