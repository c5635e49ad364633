#!/usr/bin/env bash
# Benchmark of backups in the daemon (issue 15), against one private PostgreSQL 15, in one run:
#
#  1. COUNT tenant databases of SMALL_MB each (rows made with generate_series after the daemon
#     converged them) backed up on demand by the daemon (`tenantctl backup --all --wait`,
#     `backups.concurrency: 2`, `backups.verify: list` so that no verification runs), against a
#     plain `pg_dump --format=custom` loop over the same databases at concurrency 2 (xargs -P2),
#     both writing under the work folder; ROUNDS interleaved rounds each, best and each printed;
#  2. manifest edit -> Ready (GET /api/v1/workspaces/<name> polled every 5 ms) p50/p99 while
#     such backups run, against the same edits with the daemon idle (CHANGES edits each);
#  3. one tenant of BIG_MB restored end to end by `tenantctl restore NAME --backup ID --wait`
#     (checksum, safety backup, suspend, restore, resume) against a plain
#     `pg_restore --clean --if-exists --no-owner --single-transaction` of the same file.
#
# The work is done by bench/backup_daemon.py; this script owns PostgreSQL and the work folder.
# Usage: bench/backup_daemon.sh [COUNT=200] [BIG_MB=500] [CHANGES=20] [ROUNDS=3] [SMALL_MB=2.5]
#   BIN_DIR: the folder holding tenant-operator and tenantctl (default BUILD_DIR, else ./build);
#   KEEP=1 keeps the work folder (the daemon's log, tenantctl's output, results.json).
# Secrets (the API token, PostgreSQL's password) reach the daemon and tenantctl through their
# environment only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
COUNT="${1:-200}"
BIG_MB="${2:-500}"
CHANGES="${3:-20}"
ROUNDS="${4:-3}"
SMALL_MB="${5:-2.5}"
BUILD_DIR="${BIN_DIR:-${BUILD_DIR:-$root/build}}"
bench_operator
tenantctl="$build/tenantctl"
[ -x "$tenantctl" ] || { echo "missing $tenantctl (BIN_DIR or BUILD_DIR)" >&2; exit 2; }
pgbin="${TM_PG_BINDIR:-/usr/lib/postgresql/15/bin}"
for tool in pg_dump pg_restore; do
  [ -x "$pgbin/$tool" ] || { echo "missing $pgbin/$tool" >&2; exit 2; }
done
bench_workdir

# Larger WAL so the 500 MB load and restores are not paced by checkpoints (the same for the
# daemon and the baselines).
bench_pg_start "max_wal_size = 8GB
checkpoint_timeout = 30min"

bench_say_machine
echo "tenantctl: $tenantctl; PostgreSQL tools: $pgbin"
python3 "$root/bench/backup_daemon.py" --operator "$operator" --root "$root" --work "$work" \
  --tenantctl "$tenantctl" --pg-bin "$pgbin" --count "$COUNT" --big-mb "$BIG_MB" \
  --changes "$CHANGES" --rounds "$ROUNDS" --small-mb "$SMALL_MB"
bench_say_load_at_end
