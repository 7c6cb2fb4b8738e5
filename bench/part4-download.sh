#!/usr/bin/env bash
# Part 4: download of the big file (GET /images/<uuid>/file) vs nginx serving
# the same bytes from the same filesystem.  One warm-up each, then interleaved
# runs; medians.
# Needs: IMGAPI_URL NGINX_URL NGINX_ROOT RESULTS BENCH_TMP BIG_FILE, and
# $BENCH_TMP/big.uuid from part 3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need IMGAPI_URL NGINX_URL NGINX_ROOT RESULTS BENCH_TMP BIG_FILE
RUNS=${BENCH_DOWNLOAD_RUNS:-5}
[[ -s "$BENCH_TMP/big.uuid" ]] || die "no uploaded image: run part3-upload.sh first"
uuid=$(cat "$BENCH_TMP/big.uuid")
size=$(stat -c %s "$BIG_FILE")
# nginx serves a hard link (or copy) of the same bytes
ln -f "$BIG_FILE" "$NGINX_ROOT/big.bin" 2>/dev/null || cp "$BIG_FILE" "$NGINX_ROOT/big.bin"
chmod a+r "$NGINX_ROOT/big.bin"
srv="$IMGAPI_URL/images/$uuid/file"
ngx="$NGINX_URL/big.bin"
log "part 4: download of $((size / 1048576)) MiB, $RUNS runs each"

get() { # get URL -> MB/s
    local w n t
    w=$(curl -sS -f -o /dev/null -w '%{size_download} %{time_total}' "$1") || die "GET $1 failed"
    read -r n t <<<"$w"
    [[ "$n" == "$size" ]] || die "GET $1 returned $n bytes, expected $size"
    mb_per_s "$n" "$t"
}
# byte-for-byte check once, which also warms both caches
a=$(curl -sS -f "$srv" | sha1sum | cut -d' ' -f1)
b=$(sha1sum "$BIG_FILE" | cut -d' ' -f1)
[[ "$a" == "$b" ]] || die "downloaded bytes differ from the uploaded file"
get "$ngx" >/dev/null

s_runs=() n_runs=()
for ((i = 1; i <= RUNS; i++)); do
    n_runs+=("$(get "$ngx")")
    s_runs+=("$(get "$srv")")
    server_alive
    log "  run $i: nginx ${n_runs[-1]} MB/s, server ${s_runs[-1]} MB/s"
done
rm -f "$NGINX_ROOT/big.bin"
record download_server_runs_mbs "${s_runs[*]}"
record download_nginx_runs_mbs "${n_runs[*]}"
record download_server_mbs "$(median "${s_runs[@]}")"
record download_nginx_mbs "$(median "${n_runs[@]}")"
