#!/usr/bin/env bash
# Benchmark of the PostgreSQL reconciler (issue 2), against one private PostgreSQL, in one run:
#
#  (a) cold converge of N fresh shared workspaces by `tenant-operator --once` (4 workers), versus
#      the very statements it sent (taken from the server's statement log) replayed by psql,
#      serially and over 4 parallel sessions;
#  (b) the no-op pass over M converged workspaces: wall time of `tenant-operator --once` (the
#      whole process: config, 1000 manifests, observe, plan) and the statements it sent, counted
#      with pg_stat_statements.
#
# Usage: bench/pg_converge.sh [N=200] [M=1000]     (BUILD_DIR defaults to ./build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
N="${1:-200}"
M="${2:-1000}"
bench_operator
bench_workdir quiet

bench_pg_start "logging_collector = on
log_destination = 'csvlog'
log_directory = 'log'
log_filename = 'bench'
log_statement = 'none'
pg_stat_statements.max = 10000"
datadir="$TM_PG_DIR/data"
psql -X -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
psqlq() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# A fleet of COUNT shared workspaces of one product with the inventory example's migrations
# (three files) and one extension, so every workspace goes through every kind of step.
make_fleet() {
  local dir="$1" count="$2"
  mkdir -p "$dir/migrations"
  cp "$root"/examples/fleet/migrations/inventory/*.sql "$dir/migrations/"
  cat >"$dir/product.yaml" <<YAML
apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: bench}
spec: {image: example/bench, defaultVersion: "1.0.0", migrations: migrations, extensions: [pg_trgm], modes: [shared]}
YAML
  local i
  for i in $(seq -f '%04g' 1 "$count"); do
    printf -- '---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: bench-%s}\nspec: {product: bench, mode: shared, database: {connectionLimit: 5}}\n' "$i"
  done >"$dir/workspaces.yaml"
  cat >"$dir/../$(basename "$dir").config.yaml" <<YAML
baseDomain: bench.test
masterKeyEnv: TM_MASTER_KEY
clusters: [{name: default, dsnEnv: TM_PG_DSN}]
sources: [{name: bench, directory: ./$(basename "$dir")}]
reconcile: {workers: 4}
YAML
}

drop_tenants() {
  psqlq -c "SELECT format('DROP DATABASE %I WITH (FORCE);', datname) FROM pg_database
            WHERE datname LIKE 'tenant\_bench\_%'" | psqlq -f - >/dev/null
  psqlq -c "SELECT format('DROP ROLE %I;', rolname) FROM pg_roles
            WHERE rolname LIKE 'user\_bench\_%'" | psqlq -f - >/dev/null
}

echo "== (a) cold converge of $N shared workspaces =="
make_fleet "$work/fleet$N" "$N"
# First run: capture the statements the operator sends (the server's statement log). The timed
# runs below all happen with statement logging off, so none pays for it.
psqlq -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
"$operator" --config "$work/fleet$N.config.yaml" --once >"$work/capture.out"
psqlq -c "ALTER SYSTEM SET log_statement = 'none'" -c "SELECT pg_reload_conf()" >/dev/null
cp "$datadir/log/bench.csv" "$work/statements.csv"
summary=$(python3 "$root/bench/replay_from_log.py" "$work/statements.csv" "$work" 4 "$TM_MASTER_KEY" \
  127.0.0.1 "$PGPORT" default postgres 2>&1)

drop_tenants
t0=$(now)
"$operator" --config "$work/fleet$N.config.yaml" --once >"$work/cold.out"
t1=$(now)
t_op=$(elapsed "$t0" "$t1")
tail -n 1 "$work/cold.out"

# PGPASSWORD would win over the password file for every user: move it into the file.
echo "127.0.0.1:$PGPORT:*:postgres:$PGPASSWORD" >>"$work/pgpass"
unset PGPASSWORD
export PGPASSFILE="$work/pgpass"
chmod 600 "$PGPASSFILE"

drop_tenants
t0=$(now)
psql -X -q -f "$work/serial.sql" >/dev/null
t1=$(now)
t_serial=$(elapsed "$t0" "$t1")

drop_tenants
t0=$(now)
for k in 0 1 2 3; do psql -X -q -f "$work/part_$k.sql" >/dev/null & done
wait
t1=$(now)
t_par=$(elapsed "$t0" "$t1")
# The replay must have rebuilt exactly what the operator built.
psqlq -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\_bench\_%'
          AND shobj_description(oid, 'pg_database') LIKE '%state=%'" | grep -qx "$N"

printf 'replayed by psql:             %s\n' "$summary"
printf 'tenant-operator --once:       %.2f s\n' "$t_op"
printf 'psql, 1 session:              %.2f s   (operator / psql serial   = %s)\n' "$t_serial" "$(ratio "$t_op" "$t_serial")"
printf 'psql, 4 sessions:             %.2f s   (operator / psql 4 sessions = %s, target <= 1.2)\n' "$t_par" "$(ratio "$t_op" "$t_par")"

echo
echo "== (b) no-op pass over $M converged workspaces =="
drop_tenants
make_fleet "$work/fleet$M" "$M"
t0=$(now)
"$operator" --config "$work/fleet$M.config.yaml" --once >"$work/cold$M.out"
t1=$(now)
printf 'cold converge of %s:         %.2f s\n' "$M" "$(elapsed "$t0" "$t1")"
times=()
for run in 1 2 3 4 5; do
  psqlq -c "SELECT pg_stat_statements_reset()" >/dev/null
  t0=$(now)
  "$operator" --config "$work/fleet$M.config.yaml" --once >"$work/noop.out"
  t1=$(now)
  times+=("$(elapsed "$t0" "$t1")")
  statements=$(psqlq -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
                         WHERE query NOT LIKE '%pg_stat_statements%'")
done
grep -c ' UpToDate ' "$work/noop.out" | grep -qx "$M"
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
printf 'no-op pass (median of 5):     %.3f s   (target < 0.5 s; runs: %s)\n' "$median" "$(printf '%.3f ' "${times[@]}")"
printf 'statements sent by the pass:  %s on 1 cluster\n' "$statements"
