#!/usr/bin/env bash
# Benchmark past one server (issue 10): COUNT shared workspaces whose manifests name no cluster,
# placed by the daemon over three private PostgreSQL servers (clusters c1, c2, c3; the store in
# c1's server, database tenant_master), in one run:
#
#  1. capture: a daemon converges the fleet with every server's statement log on (not timed);
#     replay_from_log.py turns each server's log into psql scripts, 4 per cluster (the store's
#     database left out);
#  2. psql: the same statements, as the same users, 4 psql sessions per cluster (12 at once);
#  3. cold converge by the daemon (4 workers), from its start to COUNT successful reconciles;
#     then its VmRSS / VmHWM;
#  4. no-op resync: the daemon restarted on the converged fleet, from its "store: N workspaces"
#     line to N successful reconciles in /metrics (RUNS times), with the daemon's CPU time in that
#     window and the statements sent to the three servers; its VmRSS / VmHWM after each.
# Before 2 and 3 every server is emptied of the bench's databases and roles (and the store's
# database dropped before 3).
#
# The work is done by bench/clusters_converge.py; this script owns the servers and the work
# folder, and stops every server it started on the way out.
# Usage: bench/clusters_converge.sh [COUNT=1500] [RUNS=3]   (BUILD_DIR defaults to ./build;
#        KEEP=1 keeps the work folder with the daemons' logs and results.json)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
COUNT="${1:-1500}"
RUNS="${2:-3}"
bench_operator
bench_workdir

conf="logging_collector = on
log_destination = 'csvlog'
log_directory = 'log'
log_filename = 'bench'
log_file_mode = 0644
log_statement = 'none'
pg_stat_statements.max = 10000"
for cluster in c1 c2 c3; do
  bench_pg_start_named "$cluster" "$conf"
done
export TM_MASTER_KEY="bench-master-key-0123456789abcdef0123456789"

bench_say_machine
python3 "$root/bench/clusters_converge.py" --operator "$operator" --root "$root" --work "$work" \
  --count "$COUNT" --runs "$RUNS"
bench_say_load_at_end
