#!/usr/bin/env bash
# Benchmark of the long-running controller (issue 3), against one private PostgreSQL, in one run,
# with COUNT converged shared workspaces (one manifest file each):
#
#  1. directory source: an atomic manifest edit (write a temporary file, rename it over the
#     workspace's file) to that workspace Ready at the new generation, polled on
#     GET /api/v1/workspaces/<name> every 5 ms; p50/p90/max over CHANGES edits (target < 0.3 s);
#  2. git source (a local bare repository, its own store database tm_bench_git): commit, push,
#     signed GitHub-style POST /hooks/git, to Ready (target < 1 s p50);
#  3. a full no-op resync: the daemon restarted on the converged fleet, from its
#     "store: N workspaces" line to N successful reconciles in /metrics, with the statements it
#     sent meanwhile (pg_stat_statements); `tenant-operator --once` on the same fleet as baseline;
#  4. the daemon's RSS (VmRSS/VmHWM) after converging, and its CPU over 30 s of idleness.
#
# The work is done by bench/daemon_latency.py; this script owns PostgreSQL and the work folder.
# Usage: bench/daemon_latency.sh [COUNT=1000] [CHANGES=20]   (BUILD_DIR defaults to ./build;
#        KEEP=1 keeps the work folder with the daemons' logs and results.json)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
COUNT="${1:-1000}"
CHANGES="${2:-20}"
bench_operator
command -v git >/dev/null || { echo "git is required" >&2; exit 2; }
bench_workdir

# The statement log (csvlog) stays off except while the helper explains a few extra changes.
bench_pg_start "logging_collector = on
log_destination = 'csvlog'
log_directory = 'log'
log_filename = 'bench'
log_file_mode = 0644
log_timezone = 'UTC'
log_statement = 'none'
pg_stat_statements.max = 10000"
psql -X -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

bench_say_machine
python3 "$root/bench/daemon_latency.py" --operator "$operator" --root "$root" --work "$work" \
  --count "$COUNT" --changes "$CHANGES"
bench_say_load_at_end
