#!/usr/bin/env bash
# Stop the moto server started by .ci/moto-start.sh (by its recorded PID
# only), then delete its files. Does nothing if it is not running. The venv
# (the cached install) stays.
set -euo pipefail
D=${MOTO_TEST_DIR:-/tmp/imgapi-moto}
if [ -f "$D/pid" ]; then
  pid=$(cat "$D/pid"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" || true; fi
fi
rm -rf "$D"
