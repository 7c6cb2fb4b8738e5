#!/usr/bin/env bash
# Start a single-node Garage (a real, distributed S3-compatible store, from
# crates.io) on 127.0.0.1 for the S3 blob backend tests and benchmarks, with
# one bucket and a fixed test key (allowed to create buckets). See ../shared/design/SERVICES.md.
#
#   eval "export $(.ci/garage-start.sh | tail -n 1)"
#
# Idempotent: if our Garage (recorded PID, answering `garage status`) is
# already running it is reused; the binary is installed with
# `cargo install garage --version 2.5.0 --locked` only when missing (~7 min on
# 2 cores, then cached in $GARAGE_TOOLS_ROOT/bin).
# Env: GARAGE_TEST_DIR (default /tmp/imgapi-garage), GARAGE_TOOLS_ROOT (cargo
# install root, default ~/.cargo), GARAGE_TEST_BUCKET (default imgapi-test).
# Ports: S3 API 3900, RPC 3901, admin 3903 (127.0.0.1 only).
# The last line printed is always
#   S3_ENDPOINT=http://127.0.0.1:3900 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=us-east-1 S3_BUCKET=… BUCKET=…
# Stop it with .ci/garage-stop.sh.
set -euo pipefail
D=${GARAGE_TEST_DIR:-/tmp/imgapi-garage}
ROOT=${GARAGE_TOOLS_ROOT:-$HOME/.cargo}
BUCKET=${GARAGE_TEST_BUCKET:-imgapi-test}
KEY_ID=GK0123456789abcdef01234567                                            # "GK" + 24 hex
KEY_SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  # 64 hex
ENV_LINE="S3_ENDPOINT=http://127.0.0.1:3900 AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$KEY_SECRET AWS_REGION=us-east-1 S3_BUCKET=$BUCKET BUCKET=$BUCKET"

if [ ! -x "$ROOT/bin/garage" ]; then
  echo "installing garage 2.5.0 (cargo install, ~7 min on 2 cores)..." >&2
  cargo install garage --version 2.5.0 --locked --root "$ROOT" -q
fi
G=("$ROOT/bin/garage" -c "$D/garage.toml")

# Reuse our running instance.
if [ -f "$D/pid" ] && kill -0 "$(cat "$D/pid")" 2>/dev/null && "${G[@]}" status >/dev/null 2>&1; then
  # Tests create and delete private buckets (a bucket deleted under a running server).
  "${G[@]}" key allow --create-bucket imgapi-test >/dev/null
  "${G[@]}" bucket info "$BUCKET" >/dev/null 2>&1 || {
    "${G[@]}" bucket create "$BUCKET" >/dev/null
    "${G[@]}" bucket allow --read --write --owner "$BUCKET" --key imgapi-test >/dev/null
  }
  echo "$ENV_LINE"
  exit 0
fi

rm -rf "$D"; mkdir -p "$D/meta" "$D/data"
cat >"$D/garage.toml" <<TOML
metadata_dir = "$D/meta"
data_dir = "$D/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:3900"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:3903"
TOML
"${G[@]}" server >"$D/server.log" 2>&1 &
echo $! >"$D/pid"
for _ in $(seq 100); do "${G[@]}" status >/dev/null 2>&1 && break; sleep 0.1; done
"${G[@]}" status >/dev/null 2>&1 || { cat "$D/server.log" >&2; exit 1; }
NODE=$("${G[@]}" node id -q | cut -d@ -f1)
"${G[@]}" layout assign -z dc1 -c 1G "$NODE" >/dev/null
"${G[@]}" layout apply --version 1 >/dev/null
"${G[@]}" key import --yes -n imgapi-test "$KEY_ID" "$KEY_SECRET" >/dev/null
"${G[@]}" key allow --create-bucket imgapi-test >/dev/null
"${G[@]}" bucket create "$BUCKET" >/dev/null
"${G[@]}" bucket allow --read --write --owner "$BUCKET" --key imgapi-test >/dev/null
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:3900/ && break; sleep 0.1; done
curl -s -o /dev/null http://127.0.0.1:3900/ || { cat "$D/server.log" >&2; exit 1; }
echo "$ENV_LINE"
