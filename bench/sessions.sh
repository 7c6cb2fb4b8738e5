#!/usr/bin/env bash
# Resumable upload sessions vs the plain PUT (issue 7): a 1 GiB upload on
# sqlite+local, four ways, interleaved, medians of BENCH_RUNS runs:
#
#   put       PUT /images/<uuid>/file?compression=none, the whole file
#   session   POST …/file/uploads, then the file in 64 MiB chunks as
#             PUT …/file/uploads/<id> with Content-Range, then
#             POST …?action=finish with sha1, sha256 and size
#   imgadm-put      imgadm add-file --no-resume (client hashes sha1 while sending)
#   imgadm-session  imgadm add-file (sessions; client hashes sha1 + sha256)
#
# The first two are sent by bench/upload_client.py over one keep-alive
# connection with sendfile(2) from the page cache: the same client both
# ways, costing next to nothing. Each figure is the file size over the wall
# time of the whole upload, including the server's fsync(s) before its
# answers (the session path fdatasyncs every chunk, and the finish renames
# the part file into place). Each image is deleted right after its upload,
# so the data dir never holds more than one copy.
#
#   bench/sessions.sh                       # cargo build --release, then run
#   BENCH_SKIP_BUILD=1 bench/sessions.sh    # use target/release/{imgapi,imgadm}
#
# Knobs: BENCH_SESSION_MIB (1024), BENCH_CHUNK_MIB (64), BENCH_RUNS (3),
# BENCH_TMPDIR, BENCH_KEEP=1, IMGAPI_BIN, IMGADM_BIN. BENCH_BASELINE_BIN=path
# also runs the plain PUT against that imgapi binary (e.g. a build from
# before SHA-256 was computed) on a second server, interleaved. Starts one server on a
# free loopback port with a fresh data dir, stops it (by PID) at the end.
# Needs about 2x the file size of free disk.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/common.sh"

for tool in curl python3 sha1sum sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
MIB=${BENCH_SESSION_MIB:-1024}
CHUNK_MIB=${BENCH_CHUNK_MIB:-64}
RUNS=${BENCH_RUNS:-3}
IMGAPI_BIN=${IMGAPI_BIN:-$repo/target/release/imgapi}
IMGADM_BIN=${IMGADM_BIN:-$repo/target/release/imgadm}
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "building: cargo build --release -p imgapi-server -p imgadm"
    (cd "$repo" && cargo build --release -p imgapi-server -p imgadm) >&2 || die "release build failed"
fi
[[ -x "$IMGAPI_BIN" && -x "$IMGADM_BIN" ]] || die "release binaries not found (build them or set IMGAPI_BIN/IMGADM_BIN)"

BENCH_TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/imgapi-sessions.XXXXXX")
IMGAPI_PID="" BASE_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "$IMGAPI_PID" "$BASE_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    [[ $rc -ne 0 && -f "$BENCH_TMP/imgapi.log" ]] && tail -n 20 "$BENCH_TMP/imgapi.log" >&2
    if [[ -n "${BENCH_KEEP:-}" ]]; then log "kept $BENCH_TMP"; else rm -rf "$BENCH_TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATA_DIR=$BENCH_TMP/data
RESULTS=$BENCH_TMP/results.txt
mkdir -p "$DATA_DIR"
: >"$RESULTS"
export RESULTS
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
IMGAPI_URL=http://127.0.0.1:$PORT
export IMGAPI_URL
IMGAPI_LISTEN=127.0.0.1:$PORT IMGAPI_DATA_DIR=$DATA_DIR IMGAPI_MODE=public IMGAPI_LOG_LEVEL=warn \
    "$IMGAPI_BIN" >"$BENCH_TMP/imgapi.log" 2>&1 &
IMGAPI_PID=$!
wait_up() { # wait_up URL PID
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "$1/ping" && return 0
        kill -0 "$2" 2>/dev/null || die "imgapi exited during start-up"
        sleep 0.1
    done
    die "imgapi did not answer on $1"
}
wait_up "$IMGAPI_URL" "$IMGAPI_PID"
BASE_URL=""
if [[ -n "${BENCH_BASELINE_BIN:-}" ]]; then
    BPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    BASE_URL=http://127.0.0.1:$BPORT
    mkdir -p "$BENCH_TMP/base-data"
    IMGAPI_LISTEN=127.0.0.1:$BPORT IMGAPI_DATA_DIR=$BENCH_TMP/base-data IMGAPI_MODE=public IMGAPI_LOG_LEVEL=warn \
        "$BENCH_BASELINE_BIN" >"$BENCH_TMP/base.log" 2>&1 &
    BASE_PID=$!
    wait_up "$BASE_URL" "$BASE_PID"
fi

FILE=$BENCH_TMP/big.bin
log "writing a $MIB MiB random file"
head -c "$((MIB << 20))" /dev/urandom >"$FILE"
SIZE=$(stat -c %s "$FILE")
SHA1=$(sha1sum "$FILE" | cut -d' ' -f1)
SHA256=$(sha256sum "$FILE" | cut -d' ' -f1)
CHUNK=$((CHUNK_MIB << 20))
record session_bytes "$SIZE"
record session_chunk_bytes "$CHUNK"
record machine_loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"

check_file() { # check_file RESPONSE_JSON: the image has the file we sent
    python3 - "$1" "$SIZE" "$SHA1" <<'PY' || die "upload response does not match the file"
import json, sys
f = json.load(open(sys.argv[1]))["files"][0]
assert f["size"] == int(sys.argv[2]), f
assert f["sha1"] == sys.argv[3], f
PY
}

delete_image() {
    curl -sS -f -o /dev/null -X DELETE "$IMGAPI_URL/images/$1" || die "DeleteImage $1 failed"
}

run_put() { # run_put [SERVER_URL]
    local IMGAPI_URL=${1:-$IMGAPI_URL} uuid t
    uuid=$(create_image "bench-put")
    sync
    t=$(python3 "$here/upload_client.py" put "$IMGAPI_URL/images/$uuid/file?compression=none" \
        "$FILE" "$BENCH_TMP/resp.json") || die "plain PUT failed"
    check_file "$BENCH_TMP/resp.json"
    delete_image "$uuid"
    mb_per_s "$SIZE" "$t"
}

run_session() {
    local uuid t
    uuid=$(create_image "bench-session")
    sync
    t=$(python3 "$here/upload_client.py" session "$IMGAPI_URL" "$uuid" "$FILE" "$CHUNK" \
        "$SHA1" "$SHA256" "$BENCH_TMP/resp.json") || die "session upload failed"
    check_file "$BENCH_TMP/resp.json"
    delete_image "$uuid"
    mb_per_s "$SIZE" "$t"
}

run_imgadm() { # run_imgadm EXTRA_ARG...
    local uuid t0 t1
    uuid=$(create_image "bench-imgadm")
    sync
    t0=$(date +%s.%N)
    IMGAPI_URL=$IMGAPI_URL IMGADM_CONFIG_DIR=$BENCH_TMP/imgadm IMGADM_UPLOAD_CHUNK_SIZE=$CHUNK \
        "$IMGADM_BIN" -j add-file "$uuid" -f "$FILE" -c none "$@" >"$BENCH_TMP/resp.json" \
        || die "imgadm add-file $* failed"
    t1=$(date +%s.%N)
    check_file "$BENCH_TMP/resp.json"
    delete_image "$uuid"
    mb_per_s "$SIZE" "$(python3 -c "print($t1 - $t0)")"
}

put=() session=() aput=() asession=() base=()
for ((r = 1; r <= RUNS; r++)); do
    if [[ -n "$BASE_URL" ]]; then
        base+=("$(run_put "$BASE_URL")")
        log "run $r: baseline put ${base[-1]} MB/s"
    fi
    put+=("$(run_put)")
    session+=("$(run_session)")
    aput+=("$(run_imgadm --no-resume)")
    asession+=("$(run_imgadm)")
    log "run $r: put ${put[-1]} MB/s, session ${session[-1]} MB/s, imgadm put ${aput[-1]} MB/s, imgadm session ${asession[-1]} MB/s"
done
record session_put_runs_mbs "${put[*]}"
record session_session_runs_mbs "${session[*]}"
record session_imgadm_put_runs_mbs "${aput[*]}"
record session_imgadm_session_runs_mbs "${asession[*]}"
mp=$(median "${put[@]}") ms=$(median "${session[@]}")
map=$(median "${aput[@]}") mas=$(median "${asession[@]}")
ratio() { python3 -c "print(round($1 / $2, 3))"; }
record session_put_mbs "$mp"
record session_session_mbs "$ms"
record session_ratio "$(ratio "$ms" "$mp")"
record session_imgadm_put_mbs "$map"
record session_imgadm_session_mbs "$mas"
record session_imgadm_ratio "$(ratio "$mas" "$map")"
cat <<EOF

| Upload of $MIB MiB, sqlite+local, release build | median MB/s (runs) | vs plain PUT |
|---|---|---|
| plain PUT (sendfile client) | $mp (${put[*]}) | 1 |
| session, $CHUNK_MIB MiB chunks (same client, one connection) | $ms (${session[*]}) | $(ratio "$ms" "$mp") |
| imgadm add-file --no-resume | $map (${aput[*]}) | 1 |
| imgadm add-file (session) | $mas (${asession[*]}) | $(ratio "$mas" "$map") |
EOF
if [[ -n "$BASE_URL" ]]; then
    mb=$(median "${base[@]}")
    record session_baseline_put_mbs "$mb"
    echo "| plain PUT, baseline binary ($BENCH_BASELINE_BIN) | $mb (${base[*]}) | this build: $(ratio "$mp" "$mb") of it |"
fi
