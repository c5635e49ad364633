#!/usr/bin/env bash
# The README's first command: install what is missing, build, start a private PostgreSQL, run
# the operator once on examples/ (twice: the second pass shows there is nothing left to do),
# then show the tenant databases and roles it made with psql.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
BUILD_DIR="${BUILD_DIR:-build}" scripts/build.sh
build_dir="${BUILD_DIR:-build}"

mkdir -p .run
envfile=.run/pg.env
scripts/pg-private.sh stop "$envfile"
scripts/pg-private.sh start "$envfile"
set -a
# shellcheck disable=SC1090
. "$envfile"
set +a
# A random master key for this demo: passwords are derived from it, never stored.
if [ ! -f .run/master-key ]; then (umask 077; head -c 32 /dev/urandom | base64 > .run/master-key); fi
TM_MASTER_KEY="$(cat .run/master-key)"
export TM_MASTER_KEY

echo
echo "== tenant-operator --once (first pass: creates every tenant) =="
status=0
"$build_dir/tenant-operator" --config examples/config.yaml --once || status=$?
echo "(exit code $status)"
echo
echo "== tenant-operator --once (second pass: nothing to do) =="
status=0
"$build_dir/tenant-operator" --config examples/config.yaml --once || status=$?
echo "(exit code $status)"
echo
echo "== tenant databases (psql) =="
psql -X -q -c "SELECT d.datname AS database, pg_get_userbyid(d.datdba) AS owner,
                      shobj_description(d.oid, 'pg_database') AS marker,
                      has_database_privilege('public', d.oid, 'CONNECT') AS public_connect
               FROM pg_database d WHERE d.datname LIKE 'tenant\_%' ORDER BY 1"
psql -X -q -c "SELECT rolname AS role, rolcanlogin AS login, rolconnlimit AS conn_limit,
                      left(rolpassword, 14) AS password
               FROM pg_authid WHERE rolname LIKE 'user\_%' ORDER BY 1"
echo
echo "== dedicated stacks (directory backend: .run/deployments/<workspace>/) =="
ls -l .run/deployments/*/docker-compose.yml
echo
echo "The server keeps running. Connect with:  set -a; . $envfile; set +a; psql"
echo "Stop it with:                            scripts/pg-private.sh stop $envfile"
