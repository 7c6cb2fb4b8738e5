#!/usr/bin/env bash
# Start s3s-fs (the real S3 protocol over a plain directory, from crates.io)
# on 127.0.0.1: a fast second S3 target for the blob backend tests. See
# ../shared/design/SERVICES.md.
#
#   eval "export $(.ci/s3s-start.sh | tail -n 1)"
#
# Idempotent: our running instance (recorded PID, answering HTTP) is reused;
# `cargo install s3s-fs --version 0.14.1 --features binary --locked` runs only
# when the binary is missing (~2 min; 0.15+ need a newer rustc).
# Env: S3TEST_DIR (default /tmp/imgapi-s3), S3TEST_PORT (default 9100),
# S3_TOOLS_ROOT (cargo install root, default ~/.cargo), S3TEST_BUCKET
# (default imgapi-test).
# The last line printed is always
#   S3_ENDPOINT=http://127.0.0.1:<port> AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=us-east-1 S3_BUCKET=… BUCKET=…
# Stop it with .ci/s3s-stop.sh.
set -euo pipefail
S3TEST_DIR=${S3TEST_DIR:-/tmp/imgapi-s3}
S3TEST_PORT=${S3TEST_PORT:-9100}
S3_TOOLS_ROOT=${S3_TOOLS_ROOT:-$HOME/.cargo}
BUCKET=${S3TEST_BUCKET:-imgapi-test}
AK=${S3TEST_ACCESS_KEY:-imgapitestkey}
SK=${S3TEST_SECRET_KEY:-imgapitestsecret0123456789}
URL="http://127.0.0.1:$S3TEST_PORT"
ENV_LINE="S3_ENDPOINT=$URL AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 S3_BUCKET=$BUCKET BUCKET=$BUCKET"

if [ ! -x "$S3_TOOLS_ROOT/bin/s3s-fs" ]; then
  echo "installing s3s-fs 0.14.1 (cargo install, ~2 min)..." >&2
  cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$S3_TOOLS_ROOT" -q
fi
if [ -f "$S3TEST_DIR/pid" ] && kill -0 "$(cat "$S3TEST_DIR/pid")" 2>/dev/null \
   && curl -s -o /dev/null "$URL/"; then
  mkdir -p "$S3TEST_DIR/data/$BUCKET"
  echo "$ENV_LINE"
  exit 0
fi
rm -rf "$S3TEST_DIR"; mkdir -p "$S3TEST_DIR/data/$BUCKET"   # CreateBucket == mkdir under the data dir
"$S3_TOOLS_ROOT/bin/s3s-fs" --host 127.0.0.1 --port "$S3TEST_PORT" --access-key "$AK" --secret-key "$SK" \
  "$S3TEST_DIR/data" >"$S3TEST_DIR/server.log" 2>&1 &
echo $! >"$S3TEST_DIR/pid"
for _ in $(seq 100); do curl -s -o /dev/null "$URL/" && break; sleep 0.1; done
curl -s -o /dev/null "$URL/" || { cat "$S3TEST_DIR/server.log" >&2; exit 1; }
echo "$ENV_LINE"
