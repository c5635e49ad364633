#!/usr/bin/env bash
# Benchmark of fleet rollouts (issue 12), against one private PostgreSQL 15, in one run: COUNT
# shared workspaces of one product whose spec.rollout has ten percent waves (10 %, 20 %, ...,
# 100 %), no pause, maxUnavailable MAX_UNAVAILABLE, failureBudget 1; after the cold converge, for
# each configuration of BACKUPS (off: backups.beforeMigrations false; on: the default, a pg_dump
# before each migration pass, verified by restore), ROUNDS rounds of:
#
#  1. a no-op migration (`SELECT 1;`) renamed into the product's migrations folder, timed until
#     the rollout is Completed in tm_rollouts and every workspace's product_revision is the new
#     revision (the store polled every 100 ms); per-wave times from the rollout's events;
#  2. baseline: `rollout` removed from the product, another no-op migration, timed until every
#     workspace is on the new revision (all at once, as before issue 12);
#
# and the daemon's VmRSS at the end. Goal (the issue): 1. within 60 s for 1,000 workspaces on
# 2 cores. The work is done by bench/rollout_fleet.py; this script owns PostgreSQL and the work
# folder.
# Usage: bench/rollout_fleet.sh [COUNT=1000] [MAX_UNAVAILABLE=50] [ROUNDS=1] [BACKUPS=off,on]
#   (BUILD_DIR defaults to ./build; KEEP=1 keeps the work folder with the daemon's log and
#   results.json)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
COUNT="${1:-1000}"
MAX_UNAVAILABLE="${2:-50}"
ROUNDS="${3:-1}"
BACKUPS="${4:-off,on}"
bench_operator
bench_workdir
bench_pg_start
bench_say_machine
python3 "$root/bench/rollout_fleet.py" --operator "$operator" --root "$root" --work "$work" \
  --count "$COUNT" --max-unavailable "$MAX_UNAVAILABLE" --rounds "$ROUNDS" --backups "$BACKUPS"
bench_say_load_at_end
