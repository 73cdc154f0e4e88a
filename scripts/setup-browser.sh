#!/usr/bin/env bash
# Installs what the playground's browser test needs (called from scripts/setup.sh):
#   - Debian's chromium at /usr/bin/chromium (a test tool's own browser download fails on
#     machines without general internet access, so Playwright drives the Debian build), and
#     the DejaVu fonts the page asks for, so screenshots look the same everywhere;
#   - Node.js and npm, when the machine has none;
#   - the test's npm packages (playwright-core, pinned by tests/browser/package-lock.json),
#     into tests/browser/node_modules. PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD keeps npm from trying
#     to fetch a browser of its own.
# Idempotent and quiet when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || packages+=(fonts-dejavu-core)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [ ${#packages[@]} -gt 0 ]; then
  echo "setup-browser: installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.installed-lock
if ! cmp -s "$lock" "$stamp" 2>/dev/null; then
  echo "setup-browser: installing the browser test's npm packages (npm ci)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$lock" "$stamp"
fi
