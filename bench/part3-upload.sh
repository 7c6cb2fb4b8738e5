#!/usr/bin/env bash
# Part 3: durable upload of a big file (PUT /images/<uuid>/file?compression=none)
# vs two references writing the same bytes into the data directory's
# filesystem: `dd bs=1M conv=fdatasync` alone, and a pipeline of standard
# tools doing the server's work (issue 20 target 2): `tee` into `md5sum`,
# `sha1sum` and `sha256sum` and `dd conv=fdatasync`, as parallel processes,
# timed until the last of them ends. Runs are interleaved (dd, pipeline,
# server, dd, ...); medians.
# Leaves the uuid of the last uploaded image in $BENCH_TMP/big.uuid (activated)
# for part 4.
# Needs: IMGAPI_URL RESULTS BENCH_TMP DATA_DIR BIG_FILE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need IMGAPI_URL RESULTS BENCH_TMP DATA_DIR BIG_FILE
RUNS=${BENCH_RUNS:-3}
[[ -f "$BIG_FILE" ]] || die "BIG_FILE $BIG_FILE does not exist"
size=$(stat -c %s "$BIG_FILE")
sha1=$(sha1sum "$BIG_FILE" | cut -d' ' -f1)   # also pulls the file into the page cache
log "part 3: upload of $((size / 1048576)) MiB, $RUNS runs, vs dd conv=fdatasync in $DATA_DIR"

# pipeline_secs: the standard tools doing what an upload does (three digests
# and a durable write, each its own process), in seconds; checks the sha1.
pipeline_secs() {
    local fifo=$BENCH_TMP/pipe t0 t1 p1 p2 p3
    rm -rf "$fifo" && mkdir -p "$fifo"
    mkfifo "$fifo/md5" "$fifo/sha1" "$fifo/sha256"
    md5sum <"$fifo/md5" >"$fifo/md5.out" & p1=$!
    sha1sum <"$fifo/sha1" >"$fifo/sha1.out" & p2=$!
    sha256sum <"$fifo/sha256" >"$fifo/sha256.out" & p3=$!
    t0=$(date +%s%N)
    tee "$fifo/md5" "$fifo/sha1" "$fifo/sha256" <"$BIG_FILE" \
        | dd of="$DATA_DIR/.bench-pipeline" bs=1M conv=fdatasync status=none
    wait "$p1" "$p2" "$p3"
    t1=$(date +%s%N)
    rm -f "$DATA_DIR/.bench-pipeline"
    [[ "$(cut -d' ' -f1 "$fifo/sha1.out")" == "$sha1" ]] || die "the pipeline's sha1 differs"
    rm -rf "$fifo"
    python3 -c "import sys;print((int(sys.argv[2])-int(sys.argv[1]))/1e9)" "$t0" "$t1"
}

dd_runs=() pipe_runs=() up_runs=()
for ((i = 1; i <= RUNS; i++)); do
    sync
    line=$(LC_ALL=C dd if="$BIG_FILE" of="$DATA_DIR/.bench-dd" bs=1M conv=fdatasync 2>&1 | tail -n1)
    rm -f "$DATA_DIR/.bench-dd"
    secs=$(sed -nE 's/.*copied, ([0-9.e+-]+) s,.*/\1/p' <<<"$line")
    [[ -n "$secs" ]] || die "cannot parse dd output: $line"
    dd_runs+=("$(mb_per_s "$size" "$secs")")

    sync
    pipe_runs+=("$(mb_per_s "$size" "$(pipeline_secs)")")

    uuid=$(create_image "bench-upload-$i")
    sync
    # -T streams the file; 'Expect:' disables the 100-continue round trip.
    w=$(curl -sS -f -T "$BIG_FILE" -H 'Expect:' -H 'Content-Type: application/octet-stream' \
        -o "$BENCH_TMP/upload-resp.json" -w '%{time_total} %{size_upload}' \
        "$IMGAPI_URL/images/$uuid/file?compression=none") || die "upload run $i failed"
    server_alive
    read -r t sent <<<"$w"
    [[ "$sent" == "$size" ]] || die "curl sent $sent bytes, expected $size"
    python3 - "$BENCH_TMP/upload-resp.json" "$size" "$sha1" <<'PY' || die "upload response does not match the file"
import json, sys
r = json.load(open(sys.argv[1]))
f = r["files"][0]
assert f["size"] == int(sys.argv[2]), f"size {f['size']}"
assert f["sha1"] == sys.argv[3], f"sha1 {f['sha1']}"
PY
    up_runs+=("$(mb_per_s "$size" "$t")")
    log "  run $i: dd ${dd_runs[-1]} MB/s, pipeline ${pipe_runs[-1]} MB/s, server ${up_runs[-1]} MB/s"
done
activate_image "$uuid"
echo "$uuid" >"$BENCH_TMP/big.uuid"

record upload_bytes "$size"
record upload_server_runs_mbs "${up_runs[*]}"
record upload_dd_runs_mbs "${dd_runs[*]}"
record upload_server_mbs "$(median "${up_runs[@]}")"
record upload_dd_mbs "$(median "${dd_runs[@]}")"
record upload_pipeline_runs_mbs "${pipe_runs[*]}"
record upload_pipeline_mbs "$(median "${pipe_runs[@]}")"
