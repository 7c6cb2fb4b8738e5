#!/usr/bin/env bash
# Issue 20, target 3: upload and download of S3_MIB (1024) MiB through imgapi
# on Garage (started as in .ci/run), next to rclone, a direct client of the
# same bucket with imgapi's part size (8 MiB) and part concurrency (2), in
# the same run. Rounds alternate reference / imgapi; medians. Downloads:
# imgapi proxying (GetImageFile streams from S3), imgapi redirecting
# (`redirect_downloads`: 302 to a presigned URL, followed by curl -L), and
# `rclone cat` (one GET stream, as imgapi's proxy does).
#
#   bench/s3.sh        # builds the release server, measures, prints
#
# Only loopback; stops only the processes it started (by PID); the objects
# go under a fresh prefix and are deleted at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/common.sh"

MIB=${S3_MIB:-1024}
ROUNDS=${S3_ROUNDS:-3}
PART=8M
CONCURRENCY=2
DIR=$(mktemp -d "${TMPDIR:-/tmp}/imgapi-s3.XXXXXX")
BIN=${S3_BIN:-$root/target/release/imgapi}
export RESULTS=$DIR/results.txt
: >"$RESULTS"

command -v rclone >/dev/null || die "rclone is required (apt-get install -y rclone)"
if [[ -z "${S3_NO_BUILD:-}${S3_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --quiet --bin imgapi) || die "release build failed"
fi

IMGAPI_PID=""
stop_server() {
    stop_pid "$IMGAPI_PID"
    IMGAPI_PID=""
}
cleanup() {
    local rc=$?
    stop_server
    if [[ -n "${PREFIX:-}" ]]; then
        rclone purge "g:$S3_BUCKET/$PREFIX" >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Garage is plain http on loopback; a CA bundle named for the AWS SDKs (some
# machines set one for a proxy) makes rclone refuse its own http transport
unset AWS_CA_BUNDLE
envline=$("$root/.ci/garage-start.sh" | tail -n 1)
eval "export $envline"
PREFIX="bench-s3-$(date +%s)-$$"
export RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other RCLONE_CONFIG_G_ENDPOINT=$S3_ENDPOINT \
    RCLONE_CONFIG_G_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_G_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    RCLONE_CONFIG_G_REGION=$AWS_REGION RCLONE_CONFIG_G_FORCE_PATH_STYLE=true
# the same parts as imgapi; no whole-file MD5 pass before the upload (imgapi
# hashes while it streams): the reference does strictly less work
RCLONE=(rclone --s3-chunk-size "$PART" --s3-upload-concurrency "$CONCURRENCY" --s3-upload-cutoff 0
    --s3-disable-checksum --retries 1 --low-level-retries 1)

record_idle
record server_build "$(build_id "$root")"

log "writing a $MIB MiB random file"
head -c "$((MIB * 1048576))" /dev/urandom >"$DIR/big.bin"
size=$(stat -c %s "$DIR/big.bin")
sha1=$(sha1sum "$DIR/big.bin" | cut -d' ' -f1)

PORT=$(free_ports 1)
IMGAPI_URL=http://127.0.0.1:$PORT
export IMGAPI_URL
start_server() { # start_server REDIRECT(true|false)
    export IMGAPI_LISTEN=127.0.0.1:$PORT IMGAPI_MODE=public IMGAPI_LOG_LEVEL=warn IMGAPI_DATA_DIR=$DIR/data
    export IMGAPI_METRICS_LISTEN=127.0.0.1:0
    export IMGAPI_STORAGE="{\"kind\":\"s3\",\"endpoint\":\"$S3_ENDPOINT\",\"bucket\":\"$S3_BUCKET\",\"prefix\":\"$PREFIX/imgapi\",\"redirect_downloads\":$1}"
    mkdir -p "$DIR/data"
    IMGAPI_LOG=$DIR/imgapi.log
    "$BIN" >>"$IMGAPI_LOG" 2>&1 &
    IMGAPI_PID=$!
    export IMGAPI_PID IMGAPI_LOG
    wait_http "$IMGAPI_URL/ping" "$IMGAPI_PID" imgapi
}
seconds() { python3 -c 'import sys,time; t=time.monotonic(); import subprocess; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); print(time.monotonic()-t)' "$@"; }

start_server false
up_ref=() up_srv=() down_ref=() down_srv=() down_redirect=()
uuids=()
for ((r = 1; r <= ROUNDS; r++)); do
    sync
    t=$(seconds "${RCLONE[@]}" copyto "$DIR/big.bin" "g:$S3_BUCKET/$PREFIX/ref-$r") || die "rclone upload failed"
    up_ref+=("$(mb_per_s "$size" "$t")")
    sync
    uuid=$(create_image "s3-bench-$r")
    w=$(curl -sS -f -T "$DIR/big.bin" -H 'Expect:' -H 'Content-Type: application/octet-stream' \
        -o "$DIR/resp.json" -w '%{time_total} %{size_upload}' \
        "$IMGAPI_URL/images/$uuid/file?compression=none") || die "imgapi upload failed"
    read -r t sent <<<"$w"
    [[ "$sent" == "$size" ]] || die "curl sent $sent bytes"
    python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["files"][0]; assert f["sha1"]==sys.argv[2], f' \
        "$DIR/resp.json" "$sha1" || die "the upload's sha1 differs"
    up_srv+=("$(mb_per_s "$size" "$t")")
    activate_image "$uuid"
    uuids+=("$uuid")

    # downloads: bytes checked once per round, then timed to /dev/null
    [[ "$(rclone cat "g:$S3_BUCKET/$PREFIX/ref-$r" | sha1sum | cut -d' ' -f1)" == "$sha1" ]] || die "rclone read other bytes"
    [[ "$(curl -sS -f "$IMGAPI_URL/images/$uuid/file" | sha1sum | cut -d' ' -f1)" == "$sha1" ]] || die "imgapi served other bytes"
    t=$(seconds rclone cat "g:$S3_BUCKET/$PREFIX/ref-$r") || die "rclone download failed"
    down_ref+=("$(mb_per_s "$size" "$t")")
    w=$(curl -sS -f -o /dev/null -w '%{time_total} %{size_download}' "$IMGAPI_URL/images/$uuid/file") || die "download failed"
    read -r t got <<<"$w"
    [[ "$got" == "$size" ]] || die "downloaded $got bytes"
    down_srv+=("$(mb_per_s "$size" "$t")")
    log "  round $r: upload rclone ${up_ref[-1]} / imgapi ${up_srv[-1]} MB/s; download rclone ${down_ref[-1]} / imgapi ${down_srv[-1]} MB/s"
done
server_alive
record rss_hwm_kib "$(hwm_kib "$IMGAPI_PID")"
stop_server

start_server true
for ((r = 1; r <= ROUNDS; r++)); do
    uuid=${uuids[r - 1]}
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$IMGAPI_URL/images/$uuid/file")
    [[ "$code" == 302 ]] || die "redirect_downloads answered $code, not 302"
    w=$(curl -sS -f -L -o /dev/null -w '%{time_total} %{size_download}' "$IMGAPI_URL/images/$uuid/file") || die "redirected download failed"
    read -r t got <<<"$w"
    [[ "$got" == "$size" ]] || die "downloaded $got bytes"
    down_redirect+=("$(mb_per_s "$size" "$t")")
    log "  round $r: download through the redirect ${down_redirect[-1]} MB/s"
done
stop_server

record size_mib "$MIB"
record upload_rclone_runs_mbs "${up_ref[*]}"
record upload_imgapi_runs_mbs "${up_srv[*]}"
record download_rclone_runs_mbs "${down_ref[*]}"
record download_imgapi_runs_mbs "${down_srv[*]}"
record download_redirect_runs_mbs "${down_redirect[*]}"
for k in up_ref up_srv down_ref down_srv down_redirect; do
    declare -n arr=$k
    record "${k}_median_mbs" "$(median "${arr[@]}")"
done
ratio() { python3 -c "import sys;print(round(float(sys.argv[1])/float(sys.argv[2]),2))" "$1" "$2"; }
record upload_ratio "$(ratio "$(median "${up_srv[@]}")" "$(median "${up_ref[@]}")")"
record download_ratio "$(ratio "$(median "${down_srv[@]}")" "$(median "${down_ref[@]}")")"
record redirect_ratio "$(ratio "$(median "${down_redirect[@]}")" "$(median "${down_ref[@]}")")"
echo
cat "$RESULTS"
