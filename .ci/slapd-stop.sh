#!/usr/bin/env bash
# Stop the private slapd started by .ci/slapd-start.sh (same $LDAP_TEST_PORT /
# $LDAP_TEST_DIR) and remove its directory. Kills only the PID recorded in
# that directory, and only if it is a slapd running our config. Idempotent.
set -euo pipefail

PORT="${LDAP_TEST_PORT:-3389}"
DIR="${LDAP_TEST_DIR:-/tmp/imgapi-slapd-$PORT}"

ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$DIR/slapd.conf"; }

if [ -f "$DIR/slapd.pid" ]; then
  pid="$(cat "$DIR/slapd.pid")"
  if [ -n "$pid" ] && ours "$pid"; then
    kill "$pid"
    for _ in $(seq 1 50); do
      ours "$pid" || break
      sleep 0.1
    done
    if ours "$pid"; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
fi
rm -rf "$DIR"
echo "slapd-stop: stopped ($DIR removed)" >&2
