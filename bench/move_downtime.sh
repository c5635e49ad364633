#!/usr/bin/env bash
# The downtime of moving one tenant between two clusters (issue 10, moves; docs/moves.md),
# against the DBA's manual procedure on the same data in the same run:
#
#  - two private PostgreSQL servers (fsync off), clusters c1 and c2 of the daemon's config (the
#    store in c1's server, database tenant_master, the config's default);
#  - the built daemon (tenant-operator, not --once) on a directory source with one shared
#    workspace whose manifest names no cluster (a named one is refused, MovePinned), placed on
#    c1; its table filled with about SIZE_MB of rows and their primary key;
#  - RUNS times, alternating directions: the baseline `pg_dump -Fc | pg_restore` into a fresh
#    database on the target server (timed), then `tenantctl move NAME --to TARGET --wait`, the
#    move's recorded downtimeMs and its steps' times (the daemon log's event lines), then
#    `tenantctl move --prune NAME` so it can move back; the load average before each.
#
# The work is done by bench/move_downtime.py; this script owns the servers and the work folder,
# and stops every server and daemon it started on the way out.
# Usage: bench/move_downtime.sh [SIZE_MB=10] [RUNS=3]   (BUILD_DIR defaults to ./build and must
#        hold tenant-operator and tenantctl; KEEP=1 keeps the work folder with the daemon's log
#        and results.json; BEFORE_MIGRATIONS=false sets the config's backups.beforeMigrations to
#        false, a control: the resume pass on the target takes a pre-migration backup otherwise)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
SIZE_MB="${1:-10}"
RUNS="${2:-3}"
bench_operator
[ -x "$build/tenantctl" ] || { echo "build first: scripts/build.sh (missing $build/tenantctl)" >&2; exit 2; }
bench_workdir

for cluster in c1 c2; do
  bench_pg_start_named "$cluster"
done
export TM_MASTER_KEY="bench-master-key-0123456789abcdef0123456789"

bench_say_machine
python3 "$root/bench/move_downtime.py" --operator "$operator" --root "$root" --work "$work" \
  --size-mb "$SIZE_MB" --runs "$RUNS" --before-migrations "${BEFORE_MIGRATIONS:-true}"
bench_say_load_at_end
