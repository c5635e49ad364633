#!/usr/bin/env bash
# The README's first command: install what is missing, build the product binaries, start a
# private PostgreSQL, run the controller on examples/ until the examples have converged, show them
# (from the API and with psql), and keep the controller running in the foreground (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --no-browser  # the browser and Node are for the tests (scripts/test.sh)
build_dir="${BUILD_DIR:-build}"
# Only the product binaries: the quick start runs no test (scripts/test.sh builds and runs them).
# A new build folder is configured without the tests and with line-only debug information (-g1:
# backtraces keep file:line; a quarter less compile time, cmake/BuildTime.cmake); an existing
# one keeps its settings.
configure=()
if [ ! -f "$build_dir/CMakeCache.txt" ]; then configure=(-DTM_BUILD_TESTS=OFF -DTM_DEBUG_INFO=lines); fi
echo "== building tenant-operator, tenantctl, portainer-sim and example-runtime in $build_dir/ =="
BUILD_DIR="$build_dir" TARGETS="tenant-operator tenantctl portainer-sim example-runtime" scripts/build.sh \
  "${configure[@]}"

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
# The API's admin token (http.tokenEnv in examples/config.yaml): every /api/v1 route needs it.
if [ ! -f .run/api-token ]; then (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > .run/api-token); fi
TM_API_TOKEN="$(cat .run/api-token)"
export TM_API_TOKEN

listen=127.0.0.1:8080
api="http://$listen"
echo
echo "== tenant-operator --config examples/config.yaml (the controller; log: .run/operator.log) =="
"$build_dir/tenant-operator" --config examples/config.yaml --state-dir .run/state \
  > .run/operator.log 2>&1 &
operator=$!
runtime=""
trap 'kill -TERM $operator $runtime 2>/dev/null; wait $operator $runtime 2>/dev/null; echo; echo "operator stopped"' EXIT
trap 'exit 130' INT TERM
ready=0
for _ in $(seq 1 120); do
  if ! kill -0 "$operator" 2>/dev/null; then
    echo "the operator exited; its log:" >&2
    cat .run/operator.log >&2
    exit 1
  fi
  if curl -fsS "$api/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.5
done
[ "$ready" = 1 ] || { echo "not ready after 60 s; see .run/operator.log" >&2; exit 1; }
# Ready means the first sync is done; give the workers a moment to finish the first converge.
for _ in $(seq 1 60); do
  pending=$(curl -fsS -H "Authorization: Bearer $TM_API_TOKEN" "$api/api/v1/workspaces" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(sum(1 for w in items if w["status"]["phase"] not in ("Ready", "Suspended", "Stalled")))')
  [ "$pending" = 0 ] && break
  sleep 0.5
done
echo
echo "== workspaces (tenantctl get workspaces -o wide) =="
TENANTCTL_SERVER="$api" TENANTCTL_TOKEN="$TM_API_TOKEN" "$build_dir/tenantctl" get workspaces -o wide
echo
echo "== tenant databases (psql) =="
psql -X -q -c "SELECT d.datname AS database, pg_get_userbyid(d.datdba) AS owner,
                      has_database_privilege('public', d.oid, 'CONNECT') AS public_connect
               FROM pg_database d WHERE d.datname LIKE 'tenant\_%' AND d.datname <> 'tenant_master' ORDER BY 1"
echo "== dedicated stacks (directory backend: .run/deployments/<workspace>/) =="
ls -1 .run/deployments/*/docker-compose.yml

# The shared ERP's tenants, answered: the reference runtime reads the bindings the operator writes
# (.run/bindings/erp/<workspace>/, docs/bindings.md) and serves each Host from that tenant's own
# database, with that tenant's own login.
runtime_listen=127.0.0.1:8090
echo
echo "== example-runtime --bindings .run/bindings/erp --listen $runtime_listen (log: .run/runtime.log) =="
ls -1 .run/bindings/erp/
"$build_dir/example-runtime" --bindings .run/bindings/erp --listen "$runtime_listen" \
  --count-table customer > .run/runtime.log 2>&1 &
runtime=$!
for _ in $(seq 1 40); do
  curl -s -o /dev/null -H 'Host: surgir.surgir.online' "http://$runtime_listen/" && break
  sleep 0.25
done
# A customer written with the tenant's own credentials (its binding's uri), then read back through
# the runtime by host name.
psql -X -q "$(cat .run/bindings/erp/surgir/uri)" -c "INSERT INTO customer (tax_id, name) VALUES ('20100000001', 'Cliente de Surgir') ON CONFLICT (tax_id) DO NOTHING" \
  || echo "(could not insert a customer as the tenant; see the error above)"
echo "\$ curl -H 'Host: surgir.surgir.online' http://$runtime_listen/"
curl -sS -H 'Host: surgir.surgir.online' "http://$runtime_listen/"; echo
echo "\$ curl -H 'Host: nobody.surgir.online' http://$runtime_listen/"
curl -sS -H 'Host: nobody.surgir.online' "http://$runtime_listen/"; echo
cat <<TXT

The controller is running (pid $operator) and watching examples/fleet: edit, add or remove a
manifest there and it converges within a second. Open the dashboard at $api/ in a browser on
this machine and log in with the API's admin token (leave the user name empty):
  cat .run/api-token
or look at it with tenantctl:
  export TENANTCTL_SERVER=$api TENANTCTL_TOKEN=\$(cat .run/api-token)
  $build_dir/tenantctl get workspaces           status of every workspace (-o wide|json|yaml)
  $build_dir/tenantctl describe workspace acme  one workspace, its conditions, runs and events
  $build_dir/tenantctl get events               what it did, newest first
  $build_dir/tenantctl get sources              the sources and their last sync
  curl -H 'Host: surgir.surgir.online' http://$runtime_listen/
                                         the shared ERP answering for its tenant surgir
                                         (example-runtime; add a shared erp workspace and it
                                         answers for it within a second)
  curl $api/metrics                      Prometheus metrics (open, like /healthz and /readyz)
  tail -f .run/operator.log              its log
  set -a; . $envfile; set +a; psql       the private PostgreSQL
Press Ctrl-C to stop the controller; then stop PostgreSQL with: scripts/pg-private.sh stop $envfile
TXT
wait "$operator"
