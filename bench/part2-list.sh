#!/usr/bin/env bash
# Part 2: ListImages (GET /images?limit=1000) on the server vs nginx serving the
# very same response bytes from a static file.
# Needs: IMGAPI_URL NGINX_URL NGINX_ROOT RESULTS BENCH_TMP.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
need IMGAPI_URL NGINX_URL NGINX_ROOT RESULTS BENCH_TMP
LIMIT=${BENCH_LIST_LIMIT:-1000}
SECS=${BENCH_WRK_SECONDS:-10}
CONNS=${BENCH_WRK_CONNECTIONS:-16}
THREADS=${BENCH_WRK_THREADS:-2}
path="/images?limit=$LIMIT"

log "part 2: ListImages $path vs nginx serving the same bytes"
curl -sS -f -o "$NGINX_ROOT/images" "$IMGAPI_URL$path" || die "GET $IMGAPI_URL$path failed"
chmod a+r "$NGINX_ROOT/images"
count=$(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))))' "$NGINX_ROOT/images")
bytes=$(stat -c %s "$NGINX_ROOT/images")
[[ "$count" -ge 1 ]] || die "ListImages returned no images"
if [[ "$count" -lt "$LIMIT" ]]; then
    log "warning: ListImages returned $count images, fewer than limit=$LIMIT"
fi
a=$(curl -sS -f "$IMGAPI_URL$path" | sha256sum | cut -d' ' -f1)
b=$(curl -sS -f "$NGINX_URL$path" | sha256sum | cut -d' ' -f1)
[[ "$a" == "$b" ]] || die "nginx does not serve the same bytes as the server (sha256 $a vs $b); is the response deterministic?"
record list_images "$count"
record list_bytes "$bytes"

load() { # load NAME URL -> JSON stats
    local name=$1 url=$2
    if command -v wrk >/dev/null 2>&1; then
        wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "$url" >"$BENCH_TMP/wrk-$name.txt" \
            || die "wrk against $url failed"
        python3 "$here/wrkparse.py" <"$BENCH_TMP/wrk-$name.txt"
    else
        python3 "$here/httploop.py" -c "$CONNS" -d "$SECS" "$url" || die "httploop against $url reported errors"
    fi
}

for who in server nginx; do
    if [[ $who == server ]]; then url="$IMGAPI_URL$path"; else url="$NGINX_URL$path"; fi
    log "  $who: $(command -v wrk >/dev/null && echo "wrk -t$THREADS -c$CONNS -d${SECS}s" || echo "python loop, $CONNS clients, ${SECS}s")"
    load "$who" "$url" >"$BENCH_TMP/list-$who.json"
    server_alive
    read -r rps p50 p99 bad < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print(r["rps"], r.get("p50_ms"), r.get("p99_ms"), r.get("non2xx",0)+r.get("socket_errors",0)+r.get("errors",0))' "$BENCH_TMP/list-$who.json")
    record "list_${who}_rps" "$rps"
    record "list_${who}_p50_ms" "$p50"
    record "list_${who}_p99_ms" "$p99"
    record "list_${who}_errors" "$bad"
    # single client, one request at a time: the latency a lone caller sees
    python3 "$here/httploop.py" -c 1 -d 3 "$url" >"$BENCH_TMP/list-$who-seq.json" \
        || die "sequential GET against $url reported errors"
    record "list_${who}_seq_p50_ms" "$(json_field p50_ms <"$BENCH_TMP/list-$who-seq.json")"
done
record list_tool "$(command -v wrk >/dev/null && echo "wrk -t$THREADS -c$CONNS -d${SECS}s" || echo "python-loop-c$CONNS-${SECS}s")"
