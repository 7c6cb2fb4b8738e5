#!/usr/bin/env bash
# Stop the s3s-fs started by .ci/s3s-start.sh (by its recorded PID only), then
# delete its data. Does nothing if it is not running.
set -euo pipefail
S3TEST_DIR=${S3TEST_DIR:-/tmp/imgapi-s3}
if [ -f "$S3TEST_DIR/pid" ]; then
  pid=$(cat "$S3TEST_DIR/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" || true; fi
fi
rm -rf "$S3TEST_DIR"
