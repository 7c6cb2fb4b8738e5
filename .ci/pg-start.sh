#!/usr/bin/env bash
# Start a private PostgreSQL on 127.0.0.1 for the metadata-store tests
# (imgapi-meta's PostgreSQL conformance suite reads DATABASE_URL).
#
#   eval "export $(.ci/pg-start.sh | tail -n 1)"
#
# Runs as root (initdb and postgres then run as the `postgres` user the
# Debian package creates) or as any user. Installs Debian's `postgresql` if
# initdb is missing; the distribution's own cluster is never started.
#
# Idempotent: if a server already answers on the port (ours from an earlier
# run, or any other), it is reused and only the test database is created if
# missing. Nothing is ever stopped here; .ci/pg-stop.sh stops only the
# server whose data directory is $PGTEST_DIR/data.
# Env: PGTEST_DIR (default /tmp/imgapi-pg), PGTEST_PORT (default 55432),
#      PGTEST_DB (default imgapi_test).
# The last line printed is always
#   DATABASE_URL=postgres://postgres@127.0.0.1:<port>/<db>
# fsync=off and friends are for test speed only.
set -euo pipefail

PGTEST_DIR=${PGTEST_DIR:-/tmp/imgapi-pg}
PGTEST_PORT=${PGTEST_PORT:-55432}
PGTEST_DB=${PGTEST_DB:-imgapi_test}

log() { printf 'pg-start: %s\n' "$*" >&2; }

# 1. Packages.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d on these machines keeps the distribution cluster from starting.
  if ! apt-get install -y -qq postgresql >&2; then
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
RUNAS=()
if [ "$(id -u)" = 0 ]; then RUNAS=(runuser -u postgres --); fi

answering() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGTEST_PORT" -t 2 >/dev/null 2>&1; }
psql_admin() {
  "$PGBIN/psql" -h 127.0.0.1 -p "$PGTEST_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}
ensure_db() {
  if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PGTEST_DB'")" != 1 ]; then
    # Two callers racing here: the loser's CREATE fails, then the check passes.
    psql_admin -c "CREATE DATABASE \"$PGTEST_DB\"" >/dev/null 2>&1 \
      || [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PGTEST_DB'")" = 1 ] \
      || { log "cannot create database $PGTEST_DB on 127.0.0.1:$PGTEST_PORT"; exit 1; }
  fi
}
print_env() { echo "DATABASE_URL=postgres://postgres@127.0.0.1:$PGTEST_PORT/$PGTEST_DB"; }

# 2. Already answering on the port? Reuse it.
if answering; then
  if ! psql_admin -c "SELECT 1" >/dev/null 2>&1; then
    log "a server answers on 127.0.0.1:$PGTEST_PORT but does not let user postgres in without a password;"
    log "set PGTEST_PORT to a free port"
    exit 1
  fi
  log "reusing the server on 127.0.0.1:$PGTEST_PORT"
  ensure_db
  print_env
  exit 0
fi

# 3. A fresh cluster in $PGTEST_DIR (whatever is left there is not running:
#    the port did not answer, and pg_ctl status confirms).
if [ -d "$PGTEST_DIR/data" ] && "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" status >/dev/null 2>&1; then
  log "a server runs from $PGTEST_DIR/data but does not answer on port $PGTEST_PORT; stop it with .ci/pg-stop.sh"
  exit 1
fi
rm -rf "$PGTEST_DIR"
mkdir -p "$PGTEST_DIR"
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PGTEST_DIR"; fi
"${RUNAS[@]}" "$PGBIN/initdb" -D "$PGTEST_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
  >"$PGTEST_DIR/initdb.log"
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PGTEST_PORT -k $PGTEST_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
for _ in $(seq 1 100); do answering && break; sleep 0.1; done
answering || { log "PostgreSQL did not answer on 127.0.0.1:$PGTEST_PORT"; cat "$PGTEST_DIR/server.log" >&2; exit 1; }
ensure_db
log "running ($PGTEST_DIR, port $PGTEST_PORT)"
print_env
