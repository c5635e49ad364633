#!/usr/bin/env bash
# The dashboard at fleet size (issue 14; bench/README.md, "The dashboard"):
#
#   BUILD_DIR=BUILD bench/dashboard_bench.sh first-screen [COUNT=10000]
#       the overview's first screen on a fleet of COUNT: navigation to the first rows rendered
#       (body[data-ready="1"]) in headless chromium, against the same API requests the page made,
#       fetched without a browser in the same run (the baseline)
#   BUILD_DIR=BUILD bench/dashboard_bench.sh cpu [COUNT=1000] [TABS=20] [SECONDS=60]
#       the daemon's CPU (utime + stime of /proc/PID/stat) over SECONDS of churn (a suspend or a
#       resume through the API every second) with 0 open overviews, then TABS (windows of one
#       headless chromium, one session, each page on its own stream or poller), then 0 again
#
# The fleet, cheap and honest about it: COUNT directory-source manifests (landing, shared) whose
# cluster is a closed port (127.0.0.1:1), so nothing is created and every workspace sits Degraded
# (ConnectionFailed), retried with backoff; the store is a private PostgreSQL (bench/lib.sh).
# Needs what scripts/install-deps.sh installs (chromium, Node, tests/browser/node_modules).
# KEEP=1 keeps the work folder (the operator's log).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"

mode="${1:-}"
case "$mode" in
  first-screen) count="${2:-10000}" ;;
  cpu) count="${2:-1000}"; tabs="${3:-20}"; seconds="${4:-60}" ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
[ -d "$root/tests/browser/node_modules/puppeteer-core" ] ||
  { echo "run scripts/install-deps.sh first (tests/browser/node_modules)" >&2; exit 2; }

bench_operator
bench_workdir
bench_pg_start
psql -q -c "CREATE DATABASE tm_store"
bench_say_machine

admin_token="dashboard-bench-admin-token-0123456789abcdef"
fleet="$work/fleet"
mkdir -p "$fleet/workspaces" "$fleet/stacks" "$fleet/migrations"
cp -r "$root/examples/fleet/migrations/landing" "$fleet/migrations/"
cp "$root/examples/fleet/stacks/landing.yml" "$fleet/stacks/"
cat >"$fleet/products.yaml" <<'YAML'
apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata:
  name: landing
spec:
  image: ghcr.io/acme/landing
  defaultVersion: "1.2.0"
  port: 80
  stackTemplate: stacks/landing.yml
  migrations: migrations/landing
  modes: [shared, dedicated]
YAML
t=$SECONDS
for ((i = 1; i <= count; i++)); do
  printf -v name 'ws-%05d' "$i"
  printf 'apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: %s\n  labels: {plan: p%d}\nspec:\n  product: landing\n  mode: shared\n' \
    "$name" $((i % 5)) >"$fleet/workspaces/$name.yaml"
done
echo "fleet: $count manifests written in $((SECONDS - t)) s"

cat >"$work/operator.yaml" <<YAML
baseDomain: example.test
masterKeyEnv: TM_MASTER_KEY
clusters:
  - name: default
    dsnEnv: TM_CLOSED_DSN
store:
  dsnEnv: TM_STORE_DSN
sources:
  - name: local
    directory: $fleet
stacks:
  backend: directory
  directory: $work/deployments
http:
  listen: "127.0.0.1:0"
  tokenEnv: TM_API_TOKEN
YAML

TM_CLOSED_DSN="host=127.0.0.1 port=1 user=nobody password=nothing dbname=postgres connect_timeout=2" \
TM_STORE_DSN="${TM_PG_DSN/dbname=postgres/dbname=tm_store}" \
TM_API_TOKEN="$admin_token" \
  "$operator" --config "$work/operator.yaml" --state-dir "$work/state" >"$work/operator.log" 2>&1 &
pid=$!
echo "$pid" >"$work/daemon.pids"

port=""
for _ in $(seq 1 600); do
  port="$(sed -n 's/.*serving http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$work/operator.log" | head -n1)"
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { tail -n 30 "$work/operator.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "the operator did not serve HTTP" >&2; tail -n 30 "$work/operator.log" >&2; exit 1; }
base="http://127.0.0.1:$port"

# Every manifest listed, and every workspace past its first reconcile (a phase other than Pending).
t=$SECONDS
while :; do
  summary="$(curl -fsS -H "Authorization: Bearer $admin_token" "$base/api/v1/summary" 2>/dev/null || true)"
  if [ -n "$summary" ] && python3 - "$summary" "$count" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); n = int(sys.argv[2])
sys.exit(0 if s.get("total") == n and s.get("byPhase", {}).get("Pending", 0) == 0 else 1)
PY
  then break; fi
  if ((SECONDS - t > 900)); then echo "the fleet did not settle: $summary" >&2; exit 1; fi
  sleep 2
done
echo "fleet settled in $((SECONDS - t)) s: $summary"

TM_URL="$base" TM_ADMIN_TOKEN="$admin_token" TM_DAEMON_PID="$pid" TM_CLK_TCK="$(getconf CLK_TCK)" \
TM_TABS="${tabs:-0}" TM_SECONDS="${seconds:-0}" TM_COUNT="$count" \
  node "$root/bench/dashboard_bench.mjs" "$mode"
bench_say_load_at_end
