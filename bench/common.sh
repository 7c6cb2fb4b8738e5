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
