#!/usr/bin/env bash
# Run every imgapi benchmark against a fresh server and print a markdown table.
#
#   bench/run-all.sh                 # build release, run all parts, print results
#   BENCH_SKIP_BUILD=1 bench/run-all.sh
#
# What it does: builds `target/release/imgapi` (cargo build --release -p
# imgapi-server), starts it in public mode with a fresh temporary data dir on
# a free loopback port, starts a private nginx (own temp config, own prefix,
# another loopback port; the system nginx service is never touched), runs
# parts 1-4, reads the server's peak RSS (VmHWM), runs part 6 (Docker import
# from a private docker-registry vs skopeo; skipped when docker-registry or
# skopeo is missing), prints the table, then stops only the processes it
# started (by PID) and removes its temp dir.
#
# Knobs (environment): BENCH_SKIP_BUILD=1, IMGAPI_BIN=path, BENCH_TMPDIR=dir
# (where the temp dir, data dir included, is created; default $TMPDIR or /tmp),
# BENCH_KEEP=1 (keep the temp dir), BENCH_REPORT=file (also write the table
# there), BENCH_NO_INSTALL=1 (never apt-get install nginx/wrk),
# BENCH_IMAGES (1000), BENCH_CLIENTS (16), BENCH_BIG_MIB (256),
# BENCH_RUNS (upload runs, 3), BENCH_DOWNLOAD_RUNS (5), BENCH_WRK_SECONDS (10),
# BENCH_WRK_CONNECTIONS (16), BENCH_WRK_THREADS (2), IMGAPI_LOG_LEVEL
# (passed to the server; its default is info), BENCH_PARTS (the parts to run,
# "1 2 3 4 6"; 4 needs 3), and part 6's knobs (bench/part6-docker.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/common.sh"

for tool in curl python3 sha1sum dd; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

apt_install() { # apt_install PKG: only when allowed, root, and apt-get exists
    if [[ -z "${BENCH_NO_INSTALL:-}" && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing $1 (apt-get install -y $1)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >/dev/null 2>&1 \
            || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >/dev/null 2>&1; } \
            || log "could not install $1"
    fi
}
want_part() { [[ " ${BENCH_PARTS:-1 2 3 4 6} " == *" $1 "* ]]; }
# nginx is the limit of parts 1, 2 and 4 only
NEED_NGINX=""
want_part 1 || want_part 2 || want_part 4 && NEED_NGINX=1
NGINX_BIN=$(command -v nginx || true)
[[ -z "$NGINX_BIN" && -x /usr/sbin/nginx ]] && NGINX_BIN=/usr/sbin/nginx
if [[ -z "$NGINX_BIN" && -n "$NEED_NGINX" ]]; then
    apt_install nginx
    NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
    [[ -x "$NGINX_BIN" ]] || die "nginx is required (apt-get install -y nginx)"
fi
if want_part 2 && ! command -v wrk >/dev/null 2>&1; then
    apt_install wrk
    command -v wrk >/dev/null 2>&1 || log "wrk not found: ListImages falls back to a python loop"
fi

# --- build -------------------------------------------------------------------
IMGAPI_BIN=${IMGAPI_BIN:-$repo/target/release/imgapi}
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "building: cargo build --release -p imgapi-server"
    (cd "$repo" && cargo build --release -p imgapi-server) >&2 || die "release build failed"
fi
[[ -x "$IMGAPI_BIN" ]] || die "server binary $IMGAPI_BIN not found (build it or set IMGAPI_BIN)"

# --- temp dir, cleanup -------------------------------------------------------
BENCH_TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/imgapi-bench.XXXXXX")
export BENCH_TMP
IMGAPI_PID="" NGINX_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ $rc -ne 0 && -f "$BENCH_TMP/imgapi.log" ]]; then
        log "failed (exit $rc); last lines of the server log:"
        tail -n 20 "$BENCH_TMP/imgapi.log" >&2 || true
        [[ -f "$BENCH_TMP/nginx/error.log" ]] && { log "nginx error log:"; tail -n 5 "$BENCH_TMP/nginx/error.log" >&2; }
    fi
    stop_pid "$IMGAPI_PID" imgapi
    stop_pid "$NGINX_PID" nginx
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        log "kept $BENCH_TMP"
    else
        rm -rf "$BENCH_TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# nginx workers run as an unprivileged user: they must be able to read the docroot
chmod 755 "$BENCH_TMP"
DATA_DIR=$BENCH_TMP/data
NGINX_PREFIX=$BENCH_TMP/nginx
NGINX_ROOT=$NGINX_PREFIX/www
RESULTS=$BENCH_TMP/results.txt
mkdir -p "$DATA_DIR" "$NGINX_ROOT" "$NGINX_PREFIX/tmp"
chmod 755 "$NGINX_PREFIX" "$NGINX_ROOT"
: >"$RESULTS"
export DATA_DIR NGINX_ROOT RESULTS

read -r PORT NGINX_PORT ECHO_PORT REGISTRY_PORT < <(free_ports 4)
IMGAPI_URL=http://127.0.0.1:$PORT
NGINX_URL=http://127.0.0.1:$NGINX_PORT
NGINX_ECHO_URL=http://127.0.0.1:$ECHO_PORT
export IMGAPI_URL NGINX_URL NGINX_ECHO_URL REGISTRY_PORT


# --- machine -----------------------------------------------------------------
record machine_nproc "$(nproc)"
record machine_mem "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
record machine_cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
record machine_kernel "$(uname -r)"
record machine_fs "$(df -PT "$DATA_DIR" | awk 'NR==2 {print $2 " (" $1 ")"}')"
record machine_when "$(date -u +%Y-%m-%dT%H:%MZ)"
record_idle
record machine_loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
record server_build "$(build_id "$repo"), release"

# --- start the server ----------------------------------------------------------
IMGAPI_LOG=$BENCH_TMP/imgapi.log
export IMGAPI_LOG
log "starting $IMGAPI_BIN on $IMGAPI_URL (data dir $DATA_DIR)"
# part 6's registry is a plain-http loopback one: the server must be told
IMGAPI_LISTEN=127.0.0.1:$PORT IMGAPI_DATA_DIR=$DATA_DIR IMGAPI_MODE=public \
    IMGAPI_REMOTE='{"allow_private_addresses":true}' \
    IMGAPI_DOCKER="{\"insecure_registries\":[\"127.0.0.1:$REGISTRY_PORT\"]}" \
    "$IMGAPI_BIN" >"$IMGAPI_LOG" 2>&1 &
IMGAPI_PID=$!
export IMGAPI_PID
wait_http "$IMGAPI_URL/ping" "$IMGAPI_PID" imgapi

# --- start nginx ---------------------------------------------------------------
start_nginx() {
cat >"$NGINX_PREFIX/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $NGINX_PREFIX/nginx.pid;
error_log $NGINX_PREFIX/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $NGINX_PREFIX/tmp/body;
    proxy_temp_path $NGINX_PREFIX/tmp/proxy;
    fastcgi_temp_path $NGINX_PREFIX/tmp/fastcgi;
    uwsgi_temp_path $NGINX_PREFIX/tmp/uwsgi;
    scgi_temp_path $NGINX_PREFIX/tmp/scgi;
    types { }
    # static: the saved ListImages response and the big file
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $NGINX_ROOT;
        default_type application/octet-stream;
        location = /images { default_type application/json; }
    }
    # floor for the create bench: any method, fixed small JSON answer
    server {
        listen 127.0.0.1:$ECHO_PORT;
        location / {
            default_type application/json;
            return 200 '{"uuid":"00000000-0000-0000-0000-000000000001","state":"active"}';
        }
    }
}
EOF
log "starting nginx on $NGINX_URL and $NGINX_ECHO_URL (config $NGINX_PREFIX/nginx.conf)"
"$NGINX_BIN" -t -q -c "$NGINX_PREFIX/nginx.conf" -p "$NGINX_PREFIX" -e "$NGINX_PREFIX/error.log" \
    || die "nginx rejected the generated config"
"$NGINX_BIN" -c "$NGINX_PREFIX/nginx.conf" -p "$NGINX_PREFIX" -e "$NGINX_PREFIX/error.log" &
NGINX_PID=$!
wait_http "$NGINX_ECHO_URL/" "$NGINX_PID" nginx
}
[[ -n "$NEED_NGINX" ]] && start_nginx

rss_step() {
    server_alive
    record "rss_after_$1_kib" "$(rss_kib "$IMGAPI_PID")"
}
rss_step start

# --- parts -----------------------------------------------------------------------
if want_part 1; then
    "$here/part1-create.sh"
    rss_step create
fi
if want_part 2; then
    "$here/part2-list.sh"
    rss_step list
fi

if want_part 3; then
    BIG_MIB=${BENCH_BIG_MIB:-256}
    BIG_FILE=$BENCH_TMP/big.bin
    export BIG_FILE
    log "writing a $BIG_MIB MiB random file"
    head -c "$((BIG_MIB * 1048576))" /dev/urandom >"$BIG_FILE"
    chmod a+r "$BIG_FILE"

    "$here/part3-upload.sh"
    rss_step upload
    if want_part 4; then
        "$here/part4-download.sh"
        rss_step download
    fi
fi

# --- part 5: peak RSS --------------------------------------------------------------
server_alive
record rss_hwm_kib "$(hwm_kib "$IMGAPI_PID")"
if [[ -n "$NGINX_PID" ]]; then
    ngx_hwm=$(hwm_kib "$NGINX_PID")
    for p in $(ps -o pid= --ppid "$NGINX_PID"); do
        ngx_hwm=$((ngx_hwm + $(hwm_kib "$p" || echo 0)))
    done
    record nginx_hwm_kib "$ngx_hwm"
fi

# --- part 6: Docker import (after part 5, so its peak RSS is reported on its own) ---
if want_part 6; then
    if command -v docker-registry >/dev/null 2>&1 && command -v skopeo >/dev/null 2>&1; then
        "$here/part6-docker.sh"
        server_alive
        record docker_rss_hwm_kib "$(hwm_kib "$IMGAPI_PID")"
    else
        log "part 6 skipped: docker-registry and skopeo are required (apt-get install docker-registry skopeo)"
    fi
fi
record machine_loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"
server_errors=$(grep -c '"status":5[0-9][0-9]' "$IMGAPI_LOG" || true)
record server_5xx_logged "$server_errors"

echo
report=$(python3 "$here/report.py" "$RESULTS")
printf '%s\n' "$report"
if [[ "$server_errors" != 0 ]]; then
    printf '\n**The server logged %s responses with status 5xx during the run.**\n' "$server_errors"
fi
if [[ -n "${BENCH_REPORT:-}" ]]; then
    {
        printf '%s\n' "$report"
        printf '\nRaw measurements:\n\n```\n'
        cat "$RESULTS"
        printf '```\n'
    } >"$BENCH_REPORT"
    log "report written to $BENCH_REPORT"
fi
