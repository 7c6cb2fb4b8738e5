#!/usr/bin/env bash
# Start a private OpenLDAP server (slapd) for the LDAP account-directory test.
#
#   .ci/slapd-start.sh            # port 3389 (or $LDAP_TEST_PORT)
#   eval "export $(.ci/slapd-start.sh | tail -n 1)"
#
# Runs as root on Debian. Installs `slapd` and `ldap-utils` if missing (with
# debconf told not to configure the system instance), then runs OUR OWN slapd
# from a generated slapd.conf in a private directory, listening on
# 127.0.0.1:$PORT only. The system slapd (if any) is never configured, started
# or stopped. The directory has the suffix o=smartdc, a minimal stand-in for
# Triton's UFDS `sdcPerson` schema, and the fixture accounts of
# crates/imgapi-server/tests/fixtures/dc-test-users.ldif.
#
# Idempotent: if our instance is already running on that port it is reused.
# Anonymous clients may read everything but passwords; the root DN
# cn=root,o=smartdc (password imgapi-test) may bind.
# The last line printed is always
#   LDAP_TEST_URL=ldap://127.0.0.1:<port> LDAP_TEST_BASE=o=smartdc
# Stop it with .ci/slapd-stop.sh (same $LDAP_TEST_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${LDAP_TEST_PORT:-3389}"
DIR="${LDAP_TEST_DIR:-/tmp/imgapi-slapd-$PORT}"
SUFFIX="o=smartdc"
ROOTDN="cn=root,$SUFFIX"
ROOTPW="imgapi-test"
FIXTURE="crates/imgapi-server/tests/fixtures/dc-test-users.ldif"
URL="ldap://127.0.0.1:$PORT"

log() { printf 'slapd-start: %s\n' "$*" >&2; }

ready() {
  ldapsearch -x -LLL -o nettimeout=2 -H "$URL" -b "$SUFFIX" -s base '(objectclass=*)' dn \
    >/dev/null 2>&1
}

print_env() {
  echo "LDAP_TEST_URL=$URL LDAP_TEST_BASE=$SUFFIX"
}

# 1. Packages (never configure or start the system instance).
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapsearch >/dev/null 2>&1; then
  log "installing slapd and ldap-utils"
  export DEBIAN_FRONTEND=noninteractive
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  if ! apt-get install -y -q --no-install-recommends slapd ldap-utils >&2; then
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends slapd ldap-utils >&2
  fi
fi

# 2. Already running? (our pid file, a live slapd using our config, answering)
if [ -f "$DIR/slapd.pid" ]; then
  pid="$(cat "$DIR/slapd.pid")"
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/slapd.conf" \
    && ready; then
    log "already running (pid $pid, $DIR)"
    print_env
    exit 0
  fi
  log "stale state in $DIR; recreating"
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/slapd.conf"; then
    kill "$pid" 2>/dev/null || true
    sleep 0.5
  fi
fi
rm -rf "$DIR"
mkdir -p "$DIR/db"

# 3. Schema: a minimal stand-in for UFDS's sdcPerson (only what the fixture
#    and IMGAPI use). The OIDs are under a private, test-only arc.
cat >"$DIR/sdc.schema" <<'SCHEMA'
attributetype ( 1.3.6.1.4.1.99999.38678.1.1 NAME 'uuid'
  DESC 'Triton object UUID'
  EQUALITY caseIgnoreMatch
  SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64}
  SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.38678.1.2 NAME 'login'
  DESC 'Triton account login'
  EQUALITY caseExactMatch
  SUBSTR caseExactSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
  SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.38678.2.1 NAME 'sdcPerson'
  DESC 'Triton (UFDS) account'
  SUP top STRUCTURAL
  MUST ( uuid $ login )
  MAY ( userPassword $ email $ cn $ sn $ givenName $ telephoneNumber ) )
SCHEMA

cat >"$DIR/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $DIR/sdc.schema
pidfile $DIR/slapd.pid
argsfile $DIR/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
loglevel none

database mdb
maxsize 67108864
suffix "$SUFFIX"
rootdn "$ROOTDN"
rootpw $ROOTPW
directory $DIR/db
index objectClass eq
index uuid eq
access to attrs=userPassword by anonymous auth by * none
access to * by * read
CONF

slaptest -Q -u -f "$DIR/slapd.conf" >&2

# 4. Data: the base entries, then the fixture (written for ldapadd: slapadd
#    wants plain entries, so its `changetype: add` lines are dropped).
cat >"$DIR/base.ldif" <<LDIF
dn: $SUFFIX
objectclass: organization
o: smartdc

dn: ou=users, $SUFFIX
objectclass: organizationalUnit
ou: users
LDIF
slapadd -q -f "$DIR/slapd.conf" -l "$DIR/base.ldif" >&2
grep -v -i '^changetype:' "$FIXTURE" >"$DIR/fixture.ldif"
slapadd -q -f "$DIR/slapd.conf" -l "$DIR/fixture.ldif" >&2
# A UFDS sub-user of imgapitestvader: an sdcPerson below an account, which
# is not itself an account (the test checks it is not accepted as an owner).
cat >"$DIR/subuser.ldif" <<LDIF
dn: uuid=3d1a3c7e-5b1e-4c4a-9d7e-00000000aa01, uuid=86055c40-2547-11e2-8a6b-4bb37edc84ba, ou=users, $SUFFIX
objectclass: sdcPerson
uuid: 3d1a3c7e-5b1e-4c4a-9d7e-00000000aa01
login: 86055c40-2547-11e2-8a6b-4bb37edc84ba/imgapitestsubuser
email: nobody+subuser@joyent.com
LDIF
slapadd -q -f "$DIR/slapd.conf" -l "$DIR/subuser.ldif" >&2

# 5. Start (slapd daemonizes and writes $DIR/slapd.pid) and wait until it answers.
/usr/sbin/slapd -f "$DIR/slapd.conf" -h "ldap://127.0.0.1:$PORT/" >&2
for _ in $(seq 1 100); do
  if ready; then
    log "running (pid $(cat "$DIR/slapd.pid"), $DIR, bind dn \"$ROOTDN\" password \"$ROOTPW\")"
    print_env
    exit 0
  fi
  sleep 0.1
done
log "slapd did not answer on $URL within 10 s"
exit 1
