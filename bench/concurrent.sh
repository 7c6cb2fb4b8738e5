#!/usr/bin/env bash
# Issue 20, target 4: CONC_CLIENTS (200) concurrent downloads of one
# CONC_MIB (64) MiB image, each connection a keep-alive client fetching the
# file again and again (wrk), next to nginx serving the same bytes from the
# same filesystem in the same run. Rounds alternate nginx / imgapi; medians.
# Reports the aggregate rate, errors (non-2xx, socket errors, short bodies:
# wrk counts a body shorter than Content-Length as a read error) and the
# server's RSS growth: the highest VmRSS sampled every 50 ms during the
# runs minus VmRSS before the first one.
#
#   bench/concurrent.sh        # builds the release server, measures, prints
#
# Only loopback; stops only the processes it started (by PID).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/common.sh"

CLIENTS=${CONC_CLIENTS:-200}
MIB=${CONC_MIB:-64}
SECS=${CONC_SECS:-15}
ROUNDS=${CONC_ROUNDS:-3}
THREADS=${CONC_THREADS:-2}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/imgapi-conc.XXXXXX")
BIN=${CONC_BIN:-$root/target/release/imgapi}
export RESULTS=$DIR/results.txt
: >"$RESULTS"

command -v wrk >/dev/null || die "wrk is required (apt-get install -y wrk)"
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x "$NGINX_BIN" ]] || die "nginx is required (apt-get install -y nginx)"
if [[ -z "${CONC_NO_BUILD:-}${CONC_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --quiet --bin imgapi) || die "release build failed"
fi

IMGAPI_PID="" NGINX_PID="" SAMPLER_PID=""
cleanup() {
    local rc=$?
    stop_pid "$SAMPLER_PID"
    stop_pid "$IMGAPI_PID"
    stop_pid "$NGINX_PID"
    rm -rf "$DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r PORT NGINX_PORT < <(free_ports 2)
IMGAPI_URL=http://127.0.0.1:$PORT
NGINX_URL=http://127.0.0.1:$NGINX_PORT
export IMGAPI_URL


record_idle
record server_build "$(build_id "$root")"

chmod 755 "$DIR"
mkdir -p "$DIR/data" "$DIR/nginx/www" "$DIR/nginx/tmp"
chmod 755 "$DIR/nginx" "$DIR/nginx/www"
IMGAPI_LOG=$DIR/imgapi.log
IMGAPI_LISTEN=127.0.0.1:$PORT IMGAPI_DATA_DIR=$DIR/data IMGAPI_MODE=public IMGAPI_LOG_LEVEL=warn \
    "$BIN" >"$IMGAPI_LOG" 2>&1 &
IMGAPI_PID=$!
export IMGAPI_PID IMGAPI_LOG
wait_http "$IMGAPI_URL/ping" "$IMGAPI_PID" imgapi

cat >"$DIR/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $DIR/nginx/tmp/body;
    proxy_temp_path $DIR/nginx/tmp/proxy;
    fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
    scgi_temp_path $DIR/nginx/tmp/scgi;
    types { }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        root $DIR/nginx/www;
        default_type application/octet-stream;
    }
}
EOF
"$NGINX_BIN" -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" -e "$DIR/nginx/error.log" &
NGINX_PID=$!
wait_http "$NGINX_URL/" "$NGINX_PID" nginx

# the image: one random file, uploaded; nginx serves a copy on the same filesystem
head -c "$((MIB * 1048576))" /dev/urandom >"$DIR/nginx/www/big.bin"
chmod a+r "$DIR/nginx/www/big.bin"
uuid=$(create_image conc-bench)
curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary @"$DIR/nginx/www/big.bin" "$IMGAPI_URL/images/$uuid/file?compression=none" \
    || die "AddImageFile failed"
activate_image "$uuid"
srv="$IMGAPI_URL/images/$uuid/file"
ngx="$NGINX_URL/big.bin"
want=$(sha1sum <"$DIR/nginx/www/big.bin" | cut -d' ' -f1)
for u in "$srv" "$ngx"; do # byte check, and both page caches warm
    [[ "$(curl -sS -f "$u" | sha1sum | cut -d' ' -f1)" == "$want" ]] || die "$u served other bytes"
done
log "$CLIENTS clients x $MIB MiB, $SECS s per run, $ROUNDS rounds each, wrk -t$THREADS"

ulimit -n 65536 2>/dev/null || true
rss0=$(rss_kib "$IMGAPI_PID")
record rss_before_kib "$rss0"
python3 - "$IMGAPI_PID" "$DIR/rss-max" <<'PY' &
import sys, time
pid, out = sys.argv[1], sys.argv[2]
peak = 0
while True:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]))
    except OSError:
        break
    with open(out, "w") as f:
        f.write(str(peak))
    time.sleep(0.05)
PY
SAMPLER_PID=$!

run() { # run NAME URL -> prints MB/s (10^6), records errors
    local out json
    out=$(wrk -t"$THREADS" -c"$CLIENTS" -d"${SECS}s" --timeout 60s --latency "$2") || die "wrk failed against $2"
    json=$(printf '%s\n' "$out" | python3 "$here/wrkparse.py") || die "cannot parse wrk output: $out"
    python3 - "$1" "$json" "$((MIB * 1048576))" "$RESULTS" <<'PY'
import json, sys
name, r, size, results = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
errors = r["non2xx"] + r["socket_errors"]
# bytes read, partial bodies included: with 200 clients of a 64 MiB file a
# run completes few whole requests (wrk rounds to 2 decimals of its unit)
mbs = r["read_bytes"] / r["duration_s"] / 1e6
with open(results, "a") as f:
    f.write(f"{name}_run_mbs={mbs:.1f}\n{name}_run_errors={errors}\n{name}_run_p99_ms={r.get('p99_ms')}\n")
print(f"{mbs:.1f} {errors}")
PY
}

n_runs=() s_runs=() errors=0
for ((i = 1; i <= ROUNDS; i++)); do
    read -r n e < <(run nginx "$ngx")
    n_runs+=("$n")
    errors=$((errors + e))
    read -r s e < <(run imgapi "$srv")
    s_runs+=("$s")
    errors=$((errors + e))
    server_alive
    log "  round $i: nginx $n MB/s, imgapi $s MB/s (errors so far: $errors)"
done
stop_pid "$SAMPLER_PID"
SAMPLER_PID=""
peak=$(cat "$DIR/rss-max")
record nginx_mbs "$(median "${n_runs[@]}")"
record imgapi_mbs "$(median "${s_runs[@]}")"
record ratio_vs_nginx "$(python3 -c "import sys;print(round(float(sys.argv[1])/float(sys.argv[2]),2))" "$(median "${s_runs[@]}")" "$(median "${n_runs[@]}")")"
record errors "$errors"
record rss_peak_kib "$peak"
record rss_growth_mib "$(python3 -c "import sys;print(round((int(sys.argv[1])-int(sys.argv[2]))/1024,1))" "$peak" "$rss0")"
record server_5xx_logged "$(grep -c '"status":5[0-9][0-9]' "$IMGAPI_LOG" || true)"
echo
cat "$RESULTS"
