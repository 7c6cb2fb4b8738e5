#!/usr/bin/env bash
# Scale benchmarks of issue 4 item 8 (results: docs/benchmarks.md, section
# "Scale-out backends"):
#   1. ListImages with SCALE_N (100,000) images on SQLite and on PostgreSQL:
#      an unfiltered page of 1000 and a filtered query (owner + state +
#      name=~substring); median/p90 of SCALE_REQS requests, uncached (every
#      request carries a different, ignored `_n=` parameter, which changes the
#      ListImages cache key) and cached (identical URL).
#   2. Server start-up time with those images: process start -> first 200
#      from /ping (SCALE_STARTS runs, median).
#   3. Deep pages (issue 20): a walk through every image by `marker=` (the
#      way mirrors and `imgadm avail` page), and pages reached by marker at
#      the first, middle and last position next to the first page
#      (bench/scale_pages.py).
#   4. Upload/download of a SCALE_MIB (256) MiB file through Garage (S3),
#      next to local disk (SCALE_XFER_RUNS runs, median; SCALE_SKIP_XFER=1
#      leaves it out).
#
#   bench/scale.sh            # builds, fills (once), measures, prints results
#
# Idempotent: the filled databases are reused when they already hold
# SCALE_N images (SQLite file under $SCALE_DIR, PostgreSQL database
# $SCALE_PG_DB); the S3 objects go under a fresh prefix per run and are
# deleted with their images. Only loopback addresses are used; the script
# stops only the processes it started (by PID). PostgreSQL
# (127.0.0.1:55432) and Garage (127.0.0.1:3900) are started with
# .ci/pg-start.sh / .ci/garage-start.sh when not running and left running.
# Results: key=value lines in $SCALE_DIR/results.txt (also printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/common.sh"

N=${SCALE_N:-100000}
REQS=${SCALE_REQS:-60}
STARTS=${SCALE_STARTS:-5}
MIB=${SCALE_MIB:-256}
XFER_RUNS=${SCALE_XFER_RUNS:-3}
DIR=${SCALE_DIR:-/tmp/imgapi-scale}
PORT=${SCALE_PORT:-18480}
PG_ADMIN=${SCALE_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:55432/postgres}
PG_DB=${SCALE_PG_DB:-imgapi_scale}
PG_URL=${PG_ADMIN%/*}/$PG_DB
OWNER=00000000-0000-4000-8000-000000000007   # owner 7 of fill.rs's 100
BIN=$root/target/release/imgapi
FILL=$root/target/release/examples/fill
export RESULTS=$DIR/results.txt
IMGAPI_URL=http://127.0.0.1:$PORT

mkdir -p "$DIR"
: >"$RESULTS"
IMGAPI_PID=""
cleanup() {
    local rc=$?
    stop_server
    rm -f "$DIR/big.bin" "$DIR/big.down"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_server() {
    if [[ -n "${IMGAPI_PID:-}" ]]; then
        kill "$IMGAPI_PID" 2>/dev/null || true
        wait "$IMGAPI_PID" 2>/dev/null || true
        IMGAPI_PID=""
    fi
}

# start_server NAME: start the server with the IMGAPI_* variables of the
# caller's environment; sets STARTUP_S = seconds from spawn to the first 200
# from /ping. (Not in a $(...) subshell: IMGAPI_PID must reach the caller.)
start_server() {
    local t0 t1 i
    curl -s -o /dev/null "$IMGAPI_URL/ping" && die "something already listens on $IMGAPI_URL"
    export IMGAPI_LISTEN=127.0.0.1:$PORT IMGAPI_MODE=dc IMGAPI_LOG_LEVEL=warn
    IMGAPI_LOG="$DIR/server-$1.log"
    t0=$(date +%s%N)
    "$BIN" >>"$IMGAPI_LOG" 2>&1 &
    IMGAPI_PID=$!
    for ((i = 0; i < 6000; i++)); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$IMGAPI_URL/ping" 2>/dev/null)" == 200 ]]; then
            t1=$(date +%s%N)
            STARTUP_S=$(python3 -c "import sys;print(round((int(sys.argv[2])-int(sys.argv[1]))/1e9,3))" "$t0" "$t1")
            return
        fi
        server_alive
        sleep 0.005
    done
    die "server $1 did not answer /ping within 30 s (see $IMGAPI_LOG)"
}

log "machine: $(nproc) vCPU, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
log "cpu idle at start: $(vmstat 1 2 | tail -1 | awk '{print $15}')%"
record cpu_idle_start "$(vmstat 1 2 | tail -1 | awk '{print $15}')"

log "building (release): imgapi + example fill"
(cd "$root" && cargo build --release -q -p imgapi-server --bin imgapi --example fill)

# --- PostgreSQL --------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 55432; then
    log "starting PostgreSQL (.ci/pg-start.sh)"
    "$root/.ci/pg-start.sh" >/dev/null
fi
if [[ -z "$(psql "$PG_ADMIN" -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]]; then
    psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null
fi

# --- fill --------------------------------------------------------------------
SQLITE_DB=$DIR/sqlite/imgapi.sqlite
count_sqlite() { [[ -f "$SQLITE_DB" ]] && sqlite3 "$SQLITE_DB" 'SELECT count(*) FROM images' 2>/dev/null || echo 0; }
count_pg() { psql "$PG_URL" -tAc 'SELECT count(*) FROM images' 2>/dev/null || echo 0; }
fill() { # fill NAME URL COUNT_FN
    local have
    have=$($3)
    if [[ "$have" -ge "$N" ]]; then
        log "$1: $have images already present, not filling"
        return
    fi
    log "$1: filling to $N images (has $have)"
    local t0 t1
    t0=$(date +%s%N)
    "$FILL" "$2" "$N" 100 64 >&2
    t1=$(date +%s%N)
    record "fill_${1}_s" "$(python3 -c "print(round(($t1-$t0)/1e9,1))")"
}
mkdir -p "$DIR/sqlite"
fill sqlite "sqlite://$SQLITE_DB" count_sqlite
fill postgres "$PG_URL" count_pg
[[ "$(count_sqlite)" -ge "$N" ]] || die "sqlite holds $(count_sqlite) images, expected $N"
[[ "$(count_pg)" -ge "$N" ]] || die "postgres holds $(count_pg) images, expected $N"
psql "$PG_URL" -qc 'VACUUM ANALYZE' >/dev/null
sqlite3 "$SQLITE_DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null

# --- start-up and ListImages per backend ---------------------------------------
Q_PAGE="/images?limit=1000"
Q_FILTER="/images?owner=$OWNER&state=active&name=~ubuntu&limit=1000"
for backend in sqlite postgres; do
    if [[ $backend == sqlite ]]; then
        export IMGAPI_DATABASE_URL="sqlite://$SQLITE_DB"
    else
        export IMGAPI_DATABASE_URL="$PG_URL"
    fi
    export IMGAPI_DATA_DIR="$DIR/data-$backend"
    unset IMGAPI_STORAGE
    mkdir -p "$IMGAPI_DATA_DIR"
    starts=()
    for ((s = 1; s <= STARTS; s++)); do
        sync
        start_server "$backend"
        starts+=("$STARTUP_S")
        if ((s < STARTS)); then stop_server; fi
    done
    record "startup_${backend}_runs_s" "${starts[*]}"
    record "startup_${backend}_median_s" "$(median "${starts[@]}")"
    # The `_n` parameter must not change the answer (it only defeats the cache).
    a=$(curl -sS -f "$IMGAPI_URL$Q_FILTER" | sha1sum) || die "ListImages failed"
    b=$(curl -sS -f "$IMGAPI_URL$Q_FILTER&_n=check" | sha1sum) || die "ListImages failed"
    [[ "$a" == "$b" ]] || die "the _n parameter changed the ListImages answer"
    for q in page filter; do
        if [[ $q == page ]]; then path=$Q_PAGE; else path=$Q_FILTER; fi
        for mode in uncached cached; do
            out=$(python3 "$here/scale_list.py" 127.0.0.1 "$PORT" "$path" "$REQS" "$mode") \
                || die "scale_list.py $backend $q $mode failed"
            server_alive
            while IFS== read -r k v; do
                [[ $k == n ]] && continue
                record "list_${backend}_${q}_${mode}_$k" "$v"
            done <<<"$out"
        done
    done
    # Deep pages: a walk through every image by marker, and pages reached by
    # marker at the first, middle and last position next to the first page.
    out=$(python3 "$here/scale_pages.py" 127.0.0.1 "$PORT" "$Q_PAGE" "$REQS") \
        || die "scale_pages.py $backend failed"
    server_alive
    while IFS== read -r k v; do
        record "pages_${backend}_$k" "$v"
    done <<<"$out"
    record "server_${backend}_rss_kib" "$(rss_kib "$IMGAPI_PID")"
    stop_server
done
if [[ -n "${SCALE_SKIP_XFER:-}" ]]; then
    log "SCALE_SKIP_XFER set: no upload/download part"
    exit 0
fi

# --- 256 MiB upload / download: local disk vs Garage ---------------------------
log "creating a $MIB MiB random file"
head -c $((MIB * 1048576)) /dev/urandom >"$DIR/big.bin"
size=$(stat -c %s "$DIR/big.bin")
sha1=$(sha1sum "$DIR/big.bin" | cut -d' ' -f1)

if ! curl -s -o /dev/null http://127.0.0.1:3900/; then
    log "starting Garage (.ci/garage-start.sh)"
fi
envline=$("$root/.ci/garage-start.sh" | tail -n 1)
eval "export $envline"
S3_PREFIX="bench-scale-$(date +%s)-$$"

for store in local s3; do
    export IMGAPI_DATA_DIR="$DIR/xfer-$store"
    rm -rf "$IMGAPI_DATA_DIR"
    mkdir -p "$IMGAPI_DATA_DIR"
    export IMGAPI_DATABASE_URL="sqlite://$IMGAPI_DATA_DIR/imgapi.sqlite"
    if [[ $store == s3 ]]; then
        export IMGAPI_STORAGE="{\"kind\":\"s3\",\"endpoint\":\"$S3_ENDPOINT\",\"bucket\":\"$S3_BUCKET\",\"prefix\":\"$S3_PREFIX\"}"
    else
        unset IMGAPI_STORAGE
    fi
    start_server "xfer-$store"
    ups=() downs=()
    for ((r = 1; r <= XFER_RUNS; r++)); do
        uuid=$(create_image "scale-xfer-$store-$r")
        sync
        w=$(curl -sS -f -T "$DIR/big.bin" -H 'Expect:' -H 'Content-Type: application/octet-stream' \
            -o "$DIR/upload-resp.json" -w '%{time_total} %{size_upload}' \
            "$IMGAPI_URL/images/$uuid/file?compression=none") || die "$store upload run $r failed"
        read -r t sent <<<"$w"
        [[ "$sent" == "$size" ]] || die "curl sent $sent bytes, expected $size"
        python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["files"][0]; assert f["size"]==int(sys.argv[2]) and f["sha1"]==sys.argv[3], f' \
            "$DIR/upload-resp.json" "$size" "$sha1" || die "$store upload response does not match the file"
        ups+=("$(mb_per_s "$size" "$t")")
        activate_image "$uuid"
        w=$(curl -sS -f -o "$DIR/big.down" -w '%{time_total} %{size_download}' \
            "$IMGAPI_URL/images/$uuid/file") || die "$store download run $r failed"
        read -r t got <<<"$w"
        [[ "$got" == "$size" ]] || die "downloaded $got bytes, expected $size"
        [[ "$(sha1sum "$DIR/big.down" | cut -d' ' -f1)" == "$sha1" ]] || die "$store download differs"
        rm -f "$DIR/big.down"
        w=$(curl -sS -f -o /dev/null -w '%{time_total}' "$IMGAPI_URL/images/$uuid/file") \
            || die "$store download run $r failed"
        downs+=("$(mb_per_s "$size" "$w")")
        log "  $store run $r: upload ${ups[-1]} MB/s, download (to /dev/null) ${downs[-1]} MB/s"
        curl -sS -f -o /dev/null -X DELETE "$IMGAPI_URL/images/$uuid" || die "DeleteImage $uuid failed"
    done
    server_alive
    record "xfer_${store}_upload_runs_mbs" "${ups[*]}"
    record "xfer_${store}_download_runs_mbs" "${downs[*]}"
    record "xfer_${store}_upload_mbs" "$(median "${ups[@]}")"
    record "xfer_${store}_download_mbs" "$(median "${downs[@]}")"
    record "xfer_${store}_server_hwm_kib" "$(hwm_kib "$IMGAPI_PID")"
    stop_server
    rm -rf "$IMGAPI_DATA_DIR"
done
record cpu_idle_end "$(vmstat 1 2 | tail -1 | awk '{print $15}')"
log "done; results in $RESULTS"
cat "$RESULTS"
