#!/usr/bin/env bash
# Part 6: AdminImportDockerImage of a one-layer image (a 256 MiB gzip'd tar
# of real files, see docker_fixture.py) from a local docker-registry, vs
# `skopeo copy docker://… dir:OUT` of the same image from the same registry.
# Both fetch the manifest, config and layer over loopback, verify the blob
# digest and write it to disk with an fsync; imgapi also gunzips the layer
# to verify its diff_id and computes md5/sha1/sha256. One warm-up each (also
# checks the imported image), then interleaved runs; medians of
# layer bytes / wall time. Before each imgapi run the imported image is
# deleted (top layer first), before each skopeo run OUT is removed, so every
# run fetches the whole layer.
#
# Starts its own `docker-registry serve` on 127.0.0.1:$REGISTRY_PORT with its
# storage under $BENCH_TMP, and stops it (by PID) when done. The server
# under test must allow it: `[remote] allow_private_addresses = true`,
# `[docker] insecure_registries = ["127.0.0.1:$REGISTRY_PORT"]` (run-all.sh
# starts it so).
# Also records the CPU seconds each run cost: skopeo's (getrusage of the
# child), the server's (/proc/$IMGAPI_PID/stat, when IMGAPI_PID is set) and
# the registry's.
# Needs: IMGAPI_URL RESULTS BENCH_TMP REGISTRY_PORT; docker-registry, skopeo.
# Knobs: BENCH_DOCKER_MIB (256, compressed layer size), BENCH_DOCKER_RUNS (5),
# BENCH_DOCKER_SOURCES (directories tarred, default /usr/lib /usr/share
# /usr/bin), BENCH_DOCKER_FIXTURE=dir (reuse an OCI layout written by
# docker_fixture.py there, or write it there and keep it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need IMGAPI_URL RESULTS BENCH_TMP REGISTRY_PORT
for tool in docker-registry skopeo curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required for part 6"
done
MIB=${BENCH_DOCKER_MIB:-256}
RUNS=${BENCH_DOCKER_RUNS:-5}
REGISTRY=127.0.0.1:$REGISTRY_PORT
REPO=$REGISTRY/bench/big
WORK=$BENCH_TMP/docker
FIXTURE=${BENCH_DOCKER_FIXTURE:-$WORK/oci}
mkdir -p "$WORK/registry"

REGISTRY_PID=""
stop_registry() {
    if [[ -n "$REGISTRY_PID" ]] && kill -0 "$REGISTRY_PID" 2>/dev/null; then
        kill -TERM "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"/registry "$WORK"/skopeo-out
}
trap stop_registry EXIT

# --- registry ----------------------------------------------------------------------
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
  secret: bench-not-a-secret
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for ((i = 0; i < 100; i++)); do
    kill -0 "$REGISTRY_PID" 2>/dev/null || die "docker-registry exited during start-up: $(tail -n 3 "$WORK/registry.log")"
    curl -s -o /dev/null "http://$REGISTRY/v2/" && break
    sleep 0.1
done
curl -s -f -o /dev/null "http://$REGISTRY/v2/" || die "docker-registry did not answer on $REGISTRY"

# --- fixture -------------------------------------------------------------------------
if [[ -s "$FIXTURE/index.json" && -s "$FIXTURE/layer.txt" ]]; then
    log "part 6: reusing the OCI layout in $FIXTURE"
else
    log "part 6: writing a one-layer OCI layout of ~$MIB MiB (gzip'd tar of ${BENCH_DOCKER_SOURCES:-/usr/lib /usr/share /usr/bin}) in $FIXTURE"
    # shellcheck disable=SC2086 # the sources are a list of directories
    python3 "$here/docker_fixture.py" "$FIXTURE" "$((MIB << 20))" ${BENCH_DOCKER_SOURCES:-} >"$FIXTURE.txt" \
        || die "docker_fixture.py failed"
    mv "$FIXTURE.txt" "$FIXTURE/layer.txt"
fi
fixture_value() { sed -n "s/^$1=//p" "$FIXTURE/layer.txt"; }
size=$(fixture_value layer_bytes)
raw=$(fixture_value layer_uncompressed_bytes)
record docker_layer_bytes "$size"
record docker_layer_uncompressed_bytes "$raw"
record docker_layer_files "$(fixture_value layer_files)"
record docker_layer_ratio "$(python3 -c "import sys;print(round(int(sys.argv[1])/int(sys.argv[2]),2))" "$raw" "$size")"
record docker_layer_sources "$(fixture_value layer_sources)"
record docker_runs "$RUNS"
skopeo copy -q --dest-tls-verify=false "oci:$FIXTURE:v1" "docker://$REPO:v1" >&2 \
    || die "skopeo could not push the fixture to $REPO:v1"
record docker_registry "$(docker-registry --version 2>/dev/null | head -n1)"
record docker_skopeo "$(skopeo --version)"

# --- one run of each -------------------------------------------------------------------
# CPU seconds (user + system) of a process so far; on a shared machine the
# CPU each side spends per layer is steadier than its wall time.
cpu_s() { # cpu_s PID
    [[ -n "$1" && -r /proc/$1/stat ]] || { echo 0; return; }
    python3 -c "import os,sys;f=open(f'/proc/{sys.argv[1]}/stat').read().rsplit(')',1)[1].split();print((int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'))" "$1"
}
CPU_LOG=$WORK/cpu.txt
: >"$CPU_LOG"

# run_skopeo -> MB/s; appends "skopeo CPU_S REGISTRY_CPU_S" to $CPU_LOG
run_skopeo() {
    local out=$WORK/skopeo-out w secs cpu reg0
    rm -rf "$out"
    sync
    reg0=$(cpu_s "$REGISTRY_PID")
    w=$(python3 -c '
import resource, subprocess, sys, time
t0 = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=sys.stderr)
secs = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(secs, ru.ru_utime + ru.ru_stime)
sys.exit(rc)' skopeo copy -q --src-tls-verify=false "docker://$REPO:v1" "dir:$out") || die "skopeo copy failed"
    read -r secs cpu <<<"$w"
    echo "skopeo $cpu $(python3 -c "import sys;print(float(sys.argv[2])-float(sys.argv[1]))" "$reg0" "$(cpu_s "$REGISTRY_PID")")" >>"$CPU_LOG"
    [[ $(stat -c %s "$out/$(fixture_value layer_digest | cut -d: -f2)") == "$size" ]] \
        || die "skopeo wrote a layer of the wrong size"
    rm -rf "$out"
    mb_per_s "$size" "$secs"
}

# delete_chain UUID: DeleteImage of UUID, then of its origin, and so on (top layer first)
delete_chain() {
    local uuid=$1 origin
    while [[ -n "$uuid" ]]; do
        origin=$(curl -sS -f "$IMGAPI_URL/images/$uuid" | python3 -c 'import sys,json;print(json.load(sys.stdin).get("origin",""))') \
            || die "GetImage $uuid failed"
        curl -sS -f -o /dev/null -X DELETE "$IMGAPI_URL/images/$uuid" || die "DeleteImage $uuid failed"
        uuid=$origin
    done
}

# check_stream FILE: the import stream ends well; prints the top layer's uuid
check_stream() {
    python3 - "$1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], "rb").read().split(b"\r\n") if l.strip()]
last = lines[-1] if lines else {}
if last.get("type") == "error" or not last.get("payload", {}).get("status", "").startswith("Status: Downloaded newer image"):
    sys.exit(f"the import did not end well: {last}")
created = [l for l in lines if l.get("type") == "create-docker-image"]
if len(created) != 1:
    sys.exit("no create-docker-image message in the stream")
print(created[0]["image_uuid"])
PY
}

# run_imgapi -> MB/s; appends "imgapi CPU_S REGISTRY_CPU_S" to $CPU_LOG (CPU_S 0 without IMGAPI_PID)
run_imgapi() {
    local stream=$WORK/import.stream t secs uuid cpu0 reg0
    sync
    cpu0=$(cpu_s "${IMGAPI_PID:-}")
    reg0=$(cpu_s "$REGISTRY_PID")
    t=$(curl -sS -f -N -X POST -o "$stream" -w '%{time_total}' \
        "$IMGAPI_URL/images?action=import-docker-image&repo=$REPO&tag=v1") || die "import request failed"
    echo "imgapi $(python3 -c "import sys;print(float(sys.argv[2])-float(sys.argv[1]), float(sys.argv[4])-float(sys.argv[3]))" \
        "$cpu0" "$(cpu_s "${IMGAPI_PID:-}")" "$reg0" "$(cpu_s "$REGISTRY_PID")")" >>"$CPU_LOG"
    server_alive
    uuid=$(check_stream "$stream") || die "import run failed: $(tail -c 400 "$stream")"
    echo "$uuid" >"$WORK/last.uuid"
    delete_chain "$uuid"
    mb_per_s "$size" "$t"
}

# warm-up (registry blob in the page cache on both sides' first run alike),
# and one check of what the import made
log "part 6: warm-up, then $RUNS interleaved runs of skopeo copy and the import of $((size / 1048576)) MiB"
t=$(curl -sS -f -N -X POST -o "$WORK/import.stream" -w '%{time_total}' \
    "$IMGAPI_URL/images?action=import-docker-image&repo=$REPO&tag=v1") || die "warm-up import failed"
uuid=$(check_stream "$WORK/import.stream") || die "warm-up import failed: $(tail -c 400 "$WORK/import.stream")"
curl -sS -f "$IMGAPI_URL/images/$uuid" | python3 -c '
import sys, json
img = json.load(sys.stdin)
f = img["files"][0]
assert img["state"] == "active" and img["type"] == "docker", img
assert f["size"] == int(sys.argv[1]) and f["compression"] == "gzip", f
' "$size" || die "the imported image does not match the layer"
delete_chain "$uuid"
log "  warm-up: imgapi $(mb_per_s "$size" "$t") MB/s, skopeo $(run_skopeo) MB/s"
: >"$CPU_LOG"

s_runs=() k_runs=()
for ((i = 1; i <= RUNS; i++)); do
    k_runs+=("$(run_skopeo)")
    s_runs+=("$(run_imgapi)")
    log "  run $i: skopeo ${k_runs[-1]} MB/s, imgapi ${s_runs[-1]} MB/s"
done
record docker_import_runs_mbs "${s_runs[*]}"
record docker_skopeo_runs_mbs "${k_runs[*]}"
record docker_import_mbs "$(median "${s_runs[@]}")"
record docker_skopeo_mbs "$(median "${k_runs[@]}")"
cpu_runs() { awk -v who="$1" -v col="$2" '$1 == who {printf "%s%.2f", sep, $col; sep=" "}' "$CPU_LOG"; }
record docker_skopeo_cpu_runs_s "$(cpu_runs skopeo 2)"
# shellcheck disable=SC2046 # one number per run
record docker_skopeo_cpu_s "$(median $(cpu_runs skopeo 2))"
# shellcheck disable=SC2046
record docker_registry_cpu_skopeo_s "$(median $(cpu_runs skopeo 3))"
if [[ -n "${IMGAPI_PID:-}" ]]; then
    record docker_import_cpu_runs_s "$(cpu_runs imgapi 2)"
    # shellcheck disable=SC2046
    record docker_import_cpu_s "$(median $(cpu_runs imgapi 2))"
fi
# shellcheck disable=SC2046
record docker_registry_cpu_import_s "$(median $(cpu_runs imgapi 3))"
