#!/usr/bin/env bash
# Installs what building and testing hookline needs and the machine may lack. Idempotent and
# quiet when everything is there already.
#   - C toolchain pieces for librdkafka (built from source by rdkafka-sys): make, gcc, g++,
#     pkg-config, OpenSSL and zlib headers.
#   - tansu, a Kafka-compatible broker, for the end-to-end test (scripts/install-tansu.sh).
#   - the `standardwebhooks` Python package, to verify hookline's signatures independently.
#   - the routing playground's browser test: Debian's chromium, Node.js and playwright-core
#     (scripts/setup-browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for cmd in make gcc g++ pkg-config python3; do
  command -v "$cmd" >/dev/null || missing+=("$cmd")
done
for pc in openssl zlib; do
  pkg-config --exists "$pc" 2>/dev/null || missing+=("$pc-dev")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing build dependencies (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq make gcc g++ pkg-config libssl-dev zlib1g-dev python3 python3-pip >/dev/null
fi

scripts/install-tansu.sh

if ! PYTHONPATH=.tools/py python3 -c "import standardwebhooks" 2>/dev/null; then
  echo "setup: installing the standardwebhooks Python package into .tools/py"
  python3 -m pip install -q --disable-pip-version-check --target .tools/py standardwebhooks
fi

# The routing playground's browser test (tests/playground_browser.rs).
scripts/setup-browser.sh
