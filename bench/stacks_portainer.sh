#!/usr/bin/env bash
# Benchmark of dedicated stacks (issue 4), against the Portainer simulator and one private
# PostgreSQL, in one run: Portainer calls and wall time of `tenant-operator --once` for a cold
# converge of N dedicated workspaces on E endpoints, then for the no-op resync (targets: one
# list call per endpoint and zero file reads when nothing changed). Calls are counted by the
# simulator (`/__sim/state`), not by the client.
#
# Usage: bench/stacks_portainer.sh [N=200] [E=2]     (BUILD_DIR defaults to ./build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
N="${1:-200}"
E="${2:-2}"
build="${BUILD_DIR:-$root/build}"
for bin in tenant-operator portainer-sim; do
  [ -x "$build/$bin" ] || { echo "build first: scripts/build.sh (missing $build/$bin)" >&2; exit 2; }
done

work="$(mktemp -d /tmp/tm-bench-stacks.XXXXXX)"
chmod 755 "$work"
envfile="$work/pg.env"
sim_pid=""
cleanup() {
  [ -z "$sim_pid" ] || kill "$sim_pid" 2>/dev/null || true
  "$root/scripts/pg-private.sh" stop "$envfile" || true
  rm -rf "$work"
}
trap cleanup EXIT

TM_PG_FSYNC=off "$root/scripts/pg-private.sh" start "$envfile"
set -a; . "$envfile"; set +a
export TM_MASTER_KEY="bench-master-key-0123456789abcdef0123456789"
export BENCH_PORTAINER_KEY="ptr_benchKey0123456789abcdefghijklmnopqrstuvwx"

"$build/portainer-sim" --listen 127.0.0.1:0 --api-key-env BENCH_PORTAINER_KEY --endpoints "$E" \
  >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
sim="http://$(sed -n 's/^listening on //p' "$work/sim.out")"

mkdir -p "$work/fleet"
cp -r "$root/examples/fleet/products.yaml" "$root/examples/fleet/stacks" "$root/examples/fleet/migrations" "$work/fleet/"
for i in $(seq -f '%04g' 1 "$N"); do
  printf -- '---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: dd-%s}\nspec: {product: erp, mode: dedicated, dedicated: {endpoint: %d}}\n' "$i" $(( (10#$i % E) + 1 ))
done >"$work/fleet/workspaces.yaml"
cat >"$work/config.yaml" <<YAML
baseDomain: bench.test
masterKeyEnv: TM_MASTER_KEY
clusters: [{name: default, dsnEnv: TM_PG_DSN}]
sources: [{name: bench, directory: ./fleet}]
stacks:
  backend: portainer
  portainer: {url: "$sim", apiKeyEnv: BENCH_PORTAINER_KEY}
  ledgerFile: ./ledger
reconcile: {workers: 4}
YAML

now() { date +%s.%N; }
calls() {  # route counters of the simulator, as "total list file writes"
  curl -s "$sim/__sim/state" | python3 -c '
import json, sys
s = json.load(sys.stdin)
c = s["counters"]
get = lambda k: c.get(k, 0)
writes = sum(v for k, v in c.items() if not k.startswith("GET"))
print(s["totalRequests"], get("GET /api/stacks"), get("GET /api/stacks/{id}/file"), writes)'
}

t0=$(now)
"$build/tenant-operator" --config "$work/config.yaml" --once >"$work/cold.out"
t1=$(now)
read -r total1 list1 file1 writes1 <<<"$(calls)"
tail -n 1 "$work/cold.out"
printf 'cold converge, %s dedicated on %s endpoints: %.2f s, %s Portainer calls (%s list, %s file reads, %s writes)\n' \
  "$N" "$E" "$(echo "$t1 - $t0" | bc)" "$total1" "$list1" "$file1" "$writes1"

t0=$(now)
"$build/tenant-operator" --config "$work/config.yaml" --once >"$work/noop.out"
t1=$(now)
read -r total2 list2 file2 writes2 <<<"$(calls)"
grep -c ' UpToDate ' "$work/noop.out" | grep -qx "$N"
printf 'no-op resync:                                  %.2f s, %s Portainer calls (%s list, %s file reads, %s writes)  (target: %s list, 0 file reads, 0 writes)\n' \
  "$(echo "$t1 - $t0" | bc)" "$((total2 - total1))" "$((list2 - list1))" "$((file2 - file1))" "$((writes2 - writes1))" "$E"
