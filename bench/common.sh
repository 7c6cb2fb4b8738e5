# shellcheck shell=bash
# Helpers shared by the bench/ scripts. Source it; it defines no global state
# except what the caller exports.

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# record KEY VALUE: append one raw measurement to $RESULTS (key=value lines).
record() {
    [[ -n "${RESULTS:-}" ]] || die "RESULTS is not set"
    printf '%s=%s\n' "$1" "$2" >>"$RESULTS"
    log "  $1 = $2"
}

# need VAR...: fail clearly when a required environment variable is missing.
need() {
    local v
    for v in "$@"; do
        [[ -n "${!v:-}" ]] || die "environment variable $v is required (run via bench/run-all.sh or set it)"
    done
}

# median of numbers given as arguments
median() { printf '%s\n' "$@" | python3 -c 'import sys,statistics;print(round(statistics.median(float(x) for x in sys.stdin if x.strip()),3))'; }

# mb_per_s BYTES SECONDS -> MB/s (10^6 bytes)
mb_per_s() { python3 -c "import sys;print(round(int(sys.argv[1])/float(sys.argv[2])/1e6,1))" "$1" "$2"; }

# hwm_kib PID -> VmHWM in KiB (peak resident set size) of a live process
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# server_alive: fail if the server under test died
server_alive() {
    if [[ -n "${IMGAPI_PID:-}" ]] && ! kill -0 "$IMGAPI_PID" 2>/dev/null; then
        die "the imgapi server (pid $IMGAPI_PID) is no longer running; see ${IMGAPI_LOG:-its log}"
    fi
}

# json_field FIELD: read JSON on stdin, print a top-level field
json_field() { python3 -c 'import sys,json;print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# idle_pct: the share of CPU time idle over one second (other work on the
# machine skews every figure: each script records it before measuring)
idle_pct() { python3 -c '
import time
def snap():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[3] + f[4], sum(f)
i0, t0 = snap(); time.sleep(1); i1, t1 = snap()
print(round(100 * (i1 - i0) / max(1, t1 - t0)))'; }

# record_idle: record machine_idle_before_pct, warning when below 90%
record_idle() {
    local idle
    idle=$(idle_pct)
    record machine_idle_before_pct "$idle"
    ((idle >= 90)) || log "warning: the CPU is only $idle% idle before the run; other work will skew the figures"
}

# build_id REPO: the commit measured, and whether the crates differ from it
build_id() {
    printf '%s%s' "$(cd "$1" && git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        "$(cd "$1" && git diff --quiet HEAD -- crates Cargo.toml 2>/dev/null || echo ' + uncommitted changes')"
}

# free_ports N: N free loopback ports, on one line
free_ports() { python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()' "$1"; }

# wait_http URL PID NAME: wait (10 s at most) for URL to answer while PID lives
wait_http() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    die "$3 did not answer on $1 within 10 s"
}

# stop_pid PID [NAME]: end a process this script started (TERM, up to 10 s,
# then KILL; only that PID) and reap it; nothing when PID is empty or gone
stop_pid() {
    local pid=$1 name=${2:-process} i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not stop after TERM; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

BENCH_OWNER="${BENCH_OWNER:-00000000-0000-0000-0000-0000000000aa}"

# create_image NAME: create an unactivated image, print its uuid
create_image() {
    local body resp
    body=$(printf '{"name":"%s","version":"1.0.0","type":"other","os":"other","owner":"%s","public":true}' "$1" "$BENCH_OWNER")
    resp=$(curl -sS -f -X POST -H 'Content-Type: application/json' --data-binary "$body" "$IMGAPI_URL/images") \
        || die "CreateImage failed (POST $IMGAPI_URL/images)"
    printf '%s' "$resp" | json_field uuid
}

activate_image() {
    curl -sS -f -o /dev/null -X POST "$IMGAPI_URL/images/$1?action=activate" \
        || die "ActivateImage $1 failed"
}
