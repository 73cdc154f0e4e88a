#!/usr/bin/env bash
# Installs wrk (Debian package), the HTTP load generator `hookline bench` measures the
# receiver's ceiling with. Only the benchmark needs it (scripts/bench calls this); the tests
# do not. Idempotent and quiet when wrk is there.
set -euo pipefail
if command -v wrk >/dev/null; then
  exit 0
fi
echo "install-wrk: installing the Debian package wrk"
export DEBIAN_FRONTEND=noninteractive
sudo_if_needed=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_if_needed=(sudo)
fi
"${sudo_if_needed[@]}" apt-get update -qq
"${sudo_if_needed[@]}" apt-get install -y -qq wrk >/dev/null
command -v wrk >/dev/null
