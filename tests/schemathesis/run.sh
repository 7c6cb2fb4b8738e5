#!/usr/bin/env bash
# The OpenAPI document against the server, and a bounded schemathesis run.
#
# 1. docs/openapi.json and the document a running server serves are valid
#    OpenAPI 3.1 (openapi-spec-validator).
# 2. schemathesis (both from PyPI, pinned) fuzzes a fresh embedded server
#    (sqlite + local disk, public mode, 127.0.0.1 on a free port), seeded by
#    seed.py with active and unactivated images and upload sessions so that
#    the happy paths are reached. Checks: no 5xx (hooks.py lists the two
#    documented exceptions), every status code, content type, header and
#    body as documented. Bounded: a few examples per operation and a time
#    budget, well under 3 minutes. One worker: with two, schemathesis 4.32.5
#    now and then failed inside itself (CPython "AST constructor recursion
#    depth mismatch" while compiling its generators in parallel threads).
# The server may fetch nothing: its [remote] policy refuses every source.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/schemathesis

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
if ! python3 -c "import schemathesis, openapi_spec_validator" 2>/dev/null \
  || [ "$(python3 -c 'import schemathesis; print(schemathesis.__version__)' 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ]; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi

cargo build -q --locked -p imgapi-server --bin imgapi
target_dir=$(cargo metadata -q --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/imgapi.toml" <<TOML
listen = "127.0.0.1:$port"
mode = "public"
auth_type = "none"
data_dir = "$work/data"
metrics_listen = ""
log_level = "info"
[remote]
allowed_hosts = ["127.0.0.1"]
allow_private_addresses = false
TOML
"$target_dir/debug/imgapi" --config "$work/imgapi.toml" >"$work/server.log" 2>&1 &
server_pid=$!
cleanup() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fs "$base/ping" >/dev/null 2>&1 && break
  sleep 0.1
done

python3 - "$base" <<'PY'
import json, sys, urllib.request
from openapi_spec_validator import validate
validate(json.load(open("docs/openapi.json")))
with urllib.request.urlopen(sys.argv[1] + "/openapi.json") as resp:
    validate(json.load(resp))
print("openapi: docs/openapi.json and the served document are valid OpenAPI 3.1")
PY

python3 "$here/seed.py" "$base" "$work/schemathesis.toml"

status=0
(cd "$here" && SCHEMATHESIS_HOOKS=hooks schemathesis --no-color --config-file "$work/schemathesis.toml" \
  run "$base/openapi.json" \
  --checks no_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" --max-time 110 --seed 1 \
  --request-timeout 10 --workers 1 --warnings off) >"$work/report.txt" 2>&1 || status=$?
# The summary, and every failure in full when there is one.
if [ "$status" -ne 0 ]; then
  cat "$work/report.txt"
  echo "schemathesis: failed (exit $status); server log:"
  grep -v '"status":[234]' "$work/server.log" | tail -n 20
  exit "$status"
fi
sed -n '/SUMMARY/,$p' "$work/report.txt"
python3 "$here/statuses.py" "$work/server.log"
