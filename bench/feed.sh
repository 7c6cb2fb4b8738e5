#!/usr/bin/env bash
# What the change feed costs (issue 18: "the feed adds <= 10% to the
# create-1000-images time"): part 1's client creates N active images with C
# clients (create + 64 B upload + activate = 3 writes per image) against
#   - feed: this tree's server (every write also logs its event), and
#   - base: the same server built from the commit before the change log
#     (BENCH_FEED_BASE, default: the parent of the commit that added
#     migration 0008_change_log.sql),
# in alternating rounds on fresh data dirs, in one run, on the embedded
# default (SQLite + local disk) and, when BENCH_FEED_PG_URL names a
# PostgreSQL server (an admin URL, e.g. .ci/pg-start.sh's with /postgres),
# on PostgreSQL (a fresh database per round). Prints the medians and the
# ratio feed/base.
#
#   bench/feed.sh
#   BENCH_FEED_PG_URL=postgres://postgres@127.0.0.1:55432/postgres bench/feed.sh
#
# Knobs: BENCH_IMAGES (1000), BENCH_CLIENTS (16), BENCH_FEED_ROUNDS (5),
# BENCH_FEED_BASE (a commit), BENCH_SKIP_BUILD=1 (use the binaries built
# before), BENCH_TMPDIR. The base is built in a git worktree under
# target/feed-base (its own target dir, kept for the next run); only the
# processes this script starts are stopped, by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/common.sh"

N=${BENCH_IMAGES:-1000}
C=${BENCH_CLIENTS:-16}
ROUNDS=${BENCH_FEED_ROUNDS:-5}
for tool in git cargo curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

added=$(cd "$repo" && git log --diff-filter=A --format=%H -- crates/imgapi-meta/migrations/sqlite/0008_change_log.sql | tail -n1)
[[ -n "$added" || -n "${BENCH_FEED_BASE:-}" ]] || die "cannot find the commit that added the change log; set BENCH_FEED_BASE"
BASE=${BENCH_FEED_BASE:-$(cd "$repo" && git rev-parse "$added^")}
BASE_TREE=$repo/target/feed-base/tree
BASE_TARGET=$repo/target/feed-base/target
FEED_BIN=$repo/target/release/imgapi
BASE_BIN=$BASE_TARGET/release/imgapi

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "building the feed server: cargo build --release -p imgapi-server"
    (cd "$repo" && cargo build --release -p imgapi-server) >&2 || die "release build failed"
    if [[ ! -d "$BASE_TREE" ]]; then
        mkdir -p "$(dirname "$BASE_TREE")"
        (cd "$repo" && git worktree add --detach "$BASE_TREE" "$BASE") >&2 || die "git worktree add failed"
    else
        (cd "$BASE_TREE" && git checkout -q --detach "$BASE") || die "cannot check out $BASE in $BASE_TREE"
    fi
    log "building the base server ($BASE) in $BASE_TREE"
    (cd "$BASE_TREE" && CARGO_TARGET_DIR=$BASE_TARGET cargo build --release -p imgapi-server) >&2 \
        || die "release build of the base failed"
fi
[[ -x "$FEED_BIN" && -x "$BASE_BIN" ]] || die "missing $FEED_BIN or $BASE_BIN (run without BENCH_SKIP_BUILD)"

BENCH_TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/imgapi-feed-bench.XXXXXX")
SERVER_PID=""
stop_server() {
    local i
    [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=""; return 0; }
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    rm -rf "$BENCH_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
}

# one_round BIN LABEL BACKEND: start BIN on a fresh data dir (and database), run the client, print wall_s
one_round() {
    local bin=$1 label=$2 backend=$3 port data db_url="" out i
    port=$(free_port)
    data=$(mktemp -d "$BENCH_TMP/data-$label.XXXXXX")
    if [[ $backend == postgres ]]; then
        local name
        name="imgapi_feed_bench_$(python3 -c 'import uuid;print(uuid.uuid4().hex)')"
        psql "$BENCH_FEED_PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $name" >&2 || die "CREATE DATABASE failed"
        db_url="${BENCH_FEED_PG_URL%/*}/$name"
    fi
    env IMGAPI_LISTEN=127.0.0.1:$port IMGAPI_DATA_DIR=$data IMGAPI_MODE=public IMGAPI_LOG_LEVEL=warn \
        ${db_url:+IMGAPI_DATABASE_URL=$db_url} "$bin" >"$data/server.log" 2>&1 &
    SERVER_PID=$!
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || die "$label server exited during start-up: $(tail -n 5 "$data/server.log")"
        curl -s -o /dev/null "http://127.0.0.1:$port/ping" && break
        sleep 0.1
    done
    out=$data/create.json
    python3 "$here/create_images.py" --url "http://127.0.0.1:$port" -n "$N" -c "$C" >"$out" \
        || die "$label: the client reported errors: $(cat "$out")"
    stop_server
    if [[ -n "$db_url" ]]; then
        psql "$BENCH_FEED_PG_URL" -qc "DROP DATABASE ${db_url##*/}" >&2 || true
    fi
    json_field wall_s <"$out"
    rm -rf "$data"
}

backends=(sqlite)
[[ -n "${BENCH_FEED_PG_URL:-}" ]] && backends+=(postgres)
log "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
log "feed: $(cd "$repo" && git rev-parse --short HEAD); base: $(cd "$repo" && git rev-parse --short "$BASE")"
printf '| backend | create %s images, %s clients: base (no feed), median of %s | with the feed | feed / base |\n' "$N" "$C" "$ROUNDS"
printf '|---|---|---|---|\n'
for backend in "${backends[@]}"; do
    base_runs=() feed_runs=()
    for ((r = 1; r <= ROUNDS; r++)); do
        # Alternate which goes first, so drift (page cache, thermal) hits both.
        if ((r % 2)); then
            base_runs+=("$(one_round "$BASE_BIN" base "$backend")")
            feed_runs+=("$(one_round "$FEED_BIN" feed "$backend")")
        else
            feed_runs+=("$(one_round "$FEED_BIN" feed "$backend")")
            base_runs+=("$(one_round "$BASE_BIN" base "$backend")")
        fi
        log "$backend round $r: base ${base_runs[-1]} s, feed ${feed_runs[-1]} s"
    done
    b=$(median "${base_runs[@]}")
    f=$(median "${feed_runs[@]}")
    ratio=$(python3 -c "import sys;print(round(float(sys.argv[1])/float(sys.argv[2]),3))" "$f" "$b")
    printf '| %s | %s s (runs: %s) | %s s (runs: %s) | %s |\n' "$backend" "$b" "${base_runs[*]}" "$f" "${feed_runs[*]}" "$ratio"
done
