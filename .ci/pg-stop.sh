#!/usr/bin/env bash
# Stop the private PostgreSQL started by .ci/pg-start.sh (same $PGTEST_DIR)
# and delete its files. Only the server whose data directory is
# $PGTEST_DIR/data is stopped (pg_ctl signals the PID recorded there);
# a server that pg-start.sh merely reused is left alone. Idempotent.
set -euo pipefail

PGTEST_DIR=${PGTEST_DIR:-/tmp/imgapi-pg}

if [ -f "$PGTEST_DIR/data/postmaster.pid" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  RUNAS=()
  if [ "$(id -u)" = 0 ]; then RUNAS=(runuser -u postgres --); fi
  if "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" status >/dev/null 2>&1; then
    "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" -m fast -w -t 60 stop >/dev/null
  fi
fi
rm -rf "$PGTEST_DIR"
echo "pg-stop: stopped ($PGTEST_DIR removed)" >&2
