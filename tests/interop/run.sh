#!/usr/bin/env bash
# Interop test: drive our IMGAPI server with the original Joyent IMGAPI client
# (npm `sdc-clients`, pinned in package.json / package-lock.json): once in
# public mode, once in dc mode, and once in private mode with channels
# (dev/staging/release, use-cases UC8); in each, every default answer must
# pass npm imgmanifest (the validator SmartOS imgadm runs). Each run gets its own server on a free
# loopback port with a fresh data dir. Skips (exit 0) when node/npm are
# missing.
#
#   tests/interop/run.sh                       # from anywhere
#   IMGAPI_BIN=/path/to/imgapi tests/interop/run.sh
#   IMGAPI_INTEROP_BUILD=1 tests/interop/run.sh  # cargo build even if the
#                                                # binary exists (may be stale)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIP: sdc-clients interop needs node and npm"
  exit 0
fi

# --ignore-scripts: the only install script in the tree is the optional
# dtrace-provider (bunyan), which is not needed and would run node-gyp.
echo "==> npm ci (tests/interop)"
(cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)

target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
bin="${IMGAPI_BIN:-$target_dir/debug/imgapi}"
if [[ ! -x "$bin" || "${IMGAPI_INTEROP_BUILD:-0}" == 1 ]]; then
  echo "==> cargo build -p imgapi-server"
  (cd "$root" && cargo build -p imgapi-server)
fi

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

server_pid=""
work=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
  if [[ -n "$work" ]]; then
    rm -rf "$work"
    work=""
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CHANNELS='[{"name":"dev","description":"all development builds","default":true},{"name":"staging","description":"builds for testing in staging"},{"name":"release","description":"release gold bits"}]'

# run_mode <interop.js mode> <IMGAPI_MODE> [IMGAPI_CHANNELS]
run_mode() {
  local mode="$1" server_mode="$2" channels="${3:-}"
  work="$(mktemp -d "${TMPDIR:-/tmp}/imgapi-interop-$mode.XXXXXX")"
  local port url
  port="$(free_port)"
  url="http://127.0.0.1:$port"

  echo "==> [$mode] starting $bin (mode $server_mode${channels:+, channels}) on $url"
  # Channels only when asked for: an unset variable means "no channels".
  local extra_env=()
  if [[ -n "$channels" ]]; then extra_env+=("IMGAPI_CHANNELS=$channels"); fi
  # The dc run also has the lifecycle rules on (docs/lifecycle.md): a
  # recycle bin and quotas far above what the flows use. The original's
  # client must not notice them.
  if [[ "$server_mode" == dc && -z "${IMGAPI_INTEROP_REGISTRY:-}" ]]; then
    extra_env+=('IMGAPI_LIFECYCLE={"recycle_days":7}')
    extra_env+=('IMGAPI_QUOTAS={"default_images":100000,"default_bytes":1099511627776}')
  fi
  if [[ -n "${IMGAPI_INTEROP_REGISTRY:-}" ]]; then
    extra_env+=("IMGAPI_DOCKER={\"insecure_registries\":[\"$IMGAPI_INTEROP_REGISTRY\"]}")
  fi
  env "${extra_env[@]}" \
    IMGAPI_LISTEN="127.0.0.1:$port" \
    IMGAPI_DATA_DIR="$work/data" \
    IMGAPI_MODE="$server_mode" \
    IMGAPI_AUTH_TYPE=none \
    IMGAPI_ADMIN_UUID=930896af-bf8c-48d4-885c-6573a94b1853 \
    IMGAPI_REMOTE='{"allow_http":true,"allow_private_addresses":true}' \
    IMGAPI_METRICS_LISTEN="127.0.0.1:0" \
    "$bin" >"$work/server.log" 2>&1 &
  server_pid=$!

  local i
  for i in $(seq 1 100); do
    if node -e 'require("http").get(process.argv[1],r=>process.exit(r.statusCode===200?0:1)).on("error",()=>process.exit(1))' "$url/ping"; then
      break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "FAIL: [$mode] server exited during start-up; log:" >&2
      cat "$work/server.log" >&2
      exit 1
    fi
    if [[ "$i" == 100 ]]; then
      echo "FAIL: [$mode] server did not answer /ping (100 attempts); log:" >&2
      cat "$work/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done

  if ! node "$here/interop.js" "$url" "$mode"; then
    echo "--- [$mode] server log (last 40 lines) ---" >&2
    tail -n 40 "$work/server.log" >&2
    exit 1
  fi
  cleanup
}

# The docker mode: a CNCF distribution registry (Debian's docker-registry)
# on a free port with a fixture image pushed by skopeo, then the dc-mode
# server imports it and pushes it back (AdminImportDockerImage,
# AdminPushDockerImage as sdc-docker calls them).
registry_pid=""
registry_dir=""
stop_registry() {
  if [[ -n "$registry_pid" ]]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    registry_pid=""
  fi
  if [[ -n "$registry_dir" ]]; then
    rm -rf "$registry_dir"
    registry_dir=""
  fi
}
trap 'cleanup; stop_registry' EXIT

run_docker() {
  if ! command -v docker-registry >/dev/null 2>&1 || ! command -v skopeo >/dev/null 2>&1; then
    echo "SKIP: [docker] needs docker-registry and skopeo (.ci/run installs them)"
    return 0
  fi
  registry_dir="$(mktemp -d "${TMPDIR:-/tmp}/imgapi-interop-registry.XXXXXX")"
  local port
  port="$(free_port)"
  cat >"$registry_dir/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $registry_dir/storage
http:
  addr: 127.0.0.1:$port
  secret: interop
YML
  docker-registry serve "$registry_dir/config.yml" >"$registry_dir/registry.log" 2>&1 &
  registry_pid=$!
  local i
  for i in $(seq 1 100); do
    if node -e 'require("http").get(process.argv[1],r=>process.exit(r.statusCode===200?0:1)).on("error",()=>process.exit(1))' "http://127.0.0.1:$port/v2/"; then
      break
    fi
    if [[ "$i" == 100 ]]; then
      echo "FAIL: [docker] the registry did not start; log:" >&2
      cat "$registry_dir/registry.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  python3 "$root/tests/docker/oci_fixture.py" "$registry_dir/layout" --layers 3 --tag v1 >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$registry_dir/layout:v1" \
    "docker://127.0.0.1:$port/interop/fixture:v1"
  IMGAPI_INTEROP_REGISTRY="127.0.0.1:$port" run_mode docker dc
  stop_registry
}

start=$SECONDS
run_mode public public
run_mode dc dc
run_mode channels private "$CHANNELS"
run_docker
echo "==> sdc-clients interop: ok ($((SECONDS - start))s)"
