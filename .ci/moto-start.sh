#!/usr/bin/env bash
# Start moto's S3 server (a second S3 implementation, from PyPI) on a free
# 127.0.0.1 port for the S3 blob backend conformance suite, with one bucket.
#
#   eval "export $(.ci/moto-start.sh | tail -n 1)"
#
# Idempotent: our running instance (recorded PID, answering HTTP) is reused.
# moto lives in a venv under $MOTO_TOOLS_ROOT (default ~/.cache/imgapi-moto),
# created with `python3 -m venv` + `pip install 'moto[server]'` only when
# missing (~50 s once; python3-venv is installed with apt if absent).
# A plain process, never a system service; stop it with .ci/moto-stop.sh.
# Env: MOTO_TEST_DIR (default /tmp/imgapi-moto), MOTO_TOOLS_ROOT,
# MOTO_TEST_BUCKET (default imgapi-test).
# The last line printed is always
#   S3_ENDPOINT=http://127.0.0.1:<port> AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=us-east-1 S3_BUCKET=… BUCKET=… S3_QUIRKS=…
set -euo pipefail
D=${MOTO_TEST_DIR:-/tmp/imgapi-moto}
ROOT=${MOTO_TOOLS_ROOT:-$HOME/.cache/imgapi-moto}
BUCKET=${MOTO_TEST_BUCKET:-imgapi-test}
AK=motoaccesskey SK=motosecretkey0123456789   # moto accepts any credentials
# How moto differs from AWS S3 in what the suite checks (see
# crates/imgapi-blob/src/testsuite.rs `s3_quirk`, docs/operating.md).
QUIRKS=fixed-initiated,any-credentials
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

if [ ! -x "$ROOT/venv/bin/moto_server" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3-venv >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  fi
  echo "installing moto[server] into $ROOT/venv (pip, ~50 s)..." >&2
  rm -rf "$ROOT/venv"
  python3 -m venv "$ROOT/venv"
  "$ROOT/venv/bin/pip" install -q 'moto[server]' >&2
fi

env_line() {
  echo "S3_ENDPOINT=http://127.0.0.1:$1 AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 S3_BUCKET=$BUCKET BUCKET=$BUCKET S3_QUIRKS=$QUIRKS"
}
create_bucket() {  # moto's buckets live in memory: (re)create ours
  curl -s -o /dev/null -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: $EMPTY_SHA256" "http://127.0.0.1:$1/$BUCKET"
}

# Reuse our running instance.
if [ -f "$D/pid" ] && [ -f "$D/port" ] && kill -0 "$(cat "$D/pid")" 2>/dev/null \
   && curl -s -o /dev/null "http://127.0.0.1:$(cat "$D/port")/"; then
  create_bucket "$(cat "$D/port")"
  env_line "$(cat "$D/port")"
  exit 0
fi

rm -rf "$D"; mkdir -p "$D"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ROOT/venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$D/server.log" 2>&1 &
echo $! >"$D/pid"
echo "$PORT" >"$D/port"
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$PORT/" || { cat "$D/server.log" >&2; exit 1; }
create_bucket "$PORT"
env_line "$PORT"
