#!/usr/bin/env bash
# Stop the Garage started by .ci/garage-start.sh (by its recorded PID only),
# then delete its files. Does nothing if it is not running.
set -euo pipefail
D=${GARAGE_TEST_DIR:-/tmp/imgapi-garage}
if [ -f "$D/pid" ]; then
  pid=$(cat "$D/pid"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" || true; fi
fi
rm -rf "$D"
