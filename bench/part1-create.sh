#!/usr/bin/env bash
# Part 1: create N active images (create + tiny upload + activate) with C
# concurrent clients; compare with the same client against nginx `return 200`
# (client + loopback floor) and with the disk's small-fdatasync rate.
# Needs: IMGAPI_URL RESULTS BENCH_TMP DATA_DIR; optional NGINX_ECHO_URL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need IMGAPI_URL RESULTS BENCH_TMP DATA_DIR
N=${BENCH_IMAGES:-1000}
C=${BENCH_CLIENTS:-16}

log "part 1: create $N active images with $C clients"
out="$BENCH_TMP/create.json"
if ! python3 "$here/create_images.py" --url "$IMGAPI_URL" -n "$N" -c "$C" >"$out"; then
    log "create bench reported errors: $(cat "$out")"
fi
server_alive
read -r wall ok errors p50 p99 ips < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print(r["wall_s"], r["ok"], r["errors"], r["p50_ms"], r["p99_ms"], r["images_per_s"])' "$out")
record create_images "$N"
record create_clients "$C"
record create_wall_s "$wall"
record create_ok "$ok"
record create_errors "$errors"
record create_p50_ms "$p50"
record create_p99_ms "$p99"
record create_images_per_s "$ips"

if [[ -n "${NGINX_ECHO_URL:-}" ]]; then
    log "part 1: same client against nginx 'return 200' (floor of client + loopback)"
    python3 "$here/create_images.py" --url "$NGINX_ECHO_URL" -n "$N" -c "$C" >"$BENCH_TMP/create-floor.json" \
        || die "floor run against nginx failed: $(cat "$BENCH_TMP/create-floor.json")"
    record create_floor_wall_s "$(json_field wall_s <"$BENCH_TMP/create-floor.json")"
fi

# The disk's durable small-write rate: 4 KiB writes each followed by fdatasync,
# in the data directory's filesystem (what every SQLite commit and file commit pays).
log "part 1: fdatasync rate of the data filesystem (dd bs=4k oflag=dsync)"
n=1000
line=$(LC_ALL=C dd if=/dev/zero of="$DATA_DIR/.bench-fsync" bs=4k count=$n oflag=dsync 2>&1 | tail -n1)
rm -f "$DATA_DIR/.bench-fsync"
secs=$(sed -nE 's/.*copied, ([0-9.e+-]+) s,.*/\1/p' <<<"$line")
[[ -n "$secs" ]] || die "cannot parse dd output: $line"
record fsync_per_s "$(python3 -c "import sys;print(round($n/float(sys.argv[1])))" "$secs")"
