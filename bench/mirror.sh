#!/usr/bin/env bash
# Issue 20, target 6: `imgapi mirror`'s first copy of MIRROR_N (1000) small
# images (MIRROR_BYTES, 64 KiB, each) from a local upstream, next to rsync
# copying the upstream's files between two directories on the same
# filesystem, in the same run: `rsync -a` (no fsync) and `rsync -a --fsync`
# (each file made durable, as the mirror does). Rounds alternate; medians.
#
#   bench/mirror.sh        # builds the release server, measures, prints
#
# Only loopback; stops only the processes it started (by PID).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/common.sh"

N=${MIRROR_N:-1000}
BYTES=${MIRROR_BYTES:-65536}
ROUNDS=${MIRROR_ROUNDS:-3}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/imgapi-mirror.XXXXXX")
BIN=${MIRROR_BIN:-$root/target/release/imgapi}
export RESULTS=$DIR/results.txt
: >"$RESULTS"

command -v rsync >/dev/null || die "rsync is required (apt-get install -y rsync)"
if [[ -z "${MIRROR_NO_BUILD:-}${MIRROR_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --quiet --bin imgapi) || die "release build failed"
fi

IMGAPI_PID=""
cleanup() {
    local rc=$?
    stop_pid "$IMGAPI_PID"
    rm -rf "$DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

record_idle
record server_build "$(build_id "$root")"

PORT=$(free_ports 1)
IMGAPI_URL=http://127.0.0.1:$PORT
export IMGAPI_URL
mkdir -p "$DIR/up"
IMGAPI_LOG=$DIR/upstream.log
IMGAPI_LISTEN=127.0.0.1:$PORT IMGAPI_DATA_DIR=$DIR/up IMGAPI_MODE=public IMGAPI_LOG_LEVEL=warn \
    IMGAPI_METRICS_LISTEN=127.0.0.1:0 "$BIN" >"$IMGAPI_LOG" 2>&1 &
IMGAPI_PID=$!
export IMGAPI_PID IMGAPI_LOG
wait_http "$IMGAPI_URL/ping" "$IMGAPI_PID" upstream
log "upstream: creating $N images of $BYTES bytes"
python3 "$here/create_images.py" --url "$IMGAPI_URL" -n "$N" -c 8 --file-bytes "$BYTES" >"$DIR/create.json" \
    || die "creating the upstream's images failed: $(cat "$DIR/create.json")"
files=$(find "$DIR/up/files" -type f | wc -l)
((files >= N)) || die "the upstream holds $files files, expected $N"
record images "$N"
record file_bytes "$BYTES"

mirror_once() { # -> seconds
    local d=$1 t0 t1
    rm -rf "$d"
    mkdir -p "$d"
    sync
    t0=$(date +%s%N)
    IMGAPI_DATA_DIR=$d IMGAPI_MODE=public IMGAPI_LOG_LEVEL=warn \
        IMGAPI_REMOTE='{"allow_http":true,"allow_private_addresses":true}' \
        ${MIRROR_WRAP:-} "$BIN" mirror --upstream "$IMGAPI_URL" --json >"$d.json" 2>"$d.log" \
        || die "mirror failed: $(tail -5 "$d.log")"
    t1=$(date +%s%N)
    python3 - "$d.json" "$N" <<'PY' || die "the mirror did not copy every image: $(cat "$d.json")"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip().startswith("{")]
r = json.loads(lines[-1])
n = int(sys.argv[2])
imported = r["new"]
assert imported == n and not r.get("failed"), r
PY
    python3 -c "import sys;print((int(sys.argv[2])-int(sys.argv[1]))/1e9)" "$t0" "$t1"
}
rsync_once() { # rsync_once DEST [--fsync] -> seconds
    local d=$1 t0 t1
    shift
    rm -rf "$d"
    sync
    t0=$(date +%s%N)
    rsync -a "$@" "$DIR/up/files/" "$d/"
    t1=$(date +%s%N)
    python3 -c "import sys;print((int(sys.argv[2])-int(sys.argv[1]))/1e9)" "$t0" "$t1"
}

m_runs=() r_runs=() rf_runs=()
for ((r = 1; r <= ROUNDS; r++)); do
    r_runs+=("$(rsync_once "$DIR/rsync")")
    rf_runs+=("$(rsync_once "$DIR/rsync-fsync" --fsync)")
    m_runs+=("$(mirror_once "$DIR/mirror")")
    server_alive
    log "  round $r: rsync ${r_runs[-1]} s, rsync --fsync ${rf_runs[-1]} s, imgapi mirror ${m_runs[-1]} s"
done
record rsync_runs_s "${r_runs[*]}"
record rsync_fsync_runs_s "${rf_runs[*]}"
record mirror_runs_s "${m_runs[*]}"
m=$(median "${m_runs[@]}")
rs=$(median "${r_runs[@]}")
rf=$(median "${rf_runs[@]}")
record mirror_s "$m"
record rsync_s "$rs"
record rsync_fsync_s "$rf"
# rate ratios: (reference time) / (mirror time)
record ratio_vs_rsync "$(python3 -c "import sys;print(round(float(sys.argv[1])/float(sys.argv[2]),3))" "$rs" "$m")"
record ratio_vs_rsync_fsync "$(python3 -c "import sys;print(round(float(sys.argv[1])/float(sys.argv[2]),3))" "$rf" "$m")"
echo
cat "$RESULTS"
