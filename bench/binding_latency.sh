#!/usr/bin/env bash
# Benchmark of a new shared tenant's binding (issue 17: "present within 1 s of Ready"), against
# one private PostgreSQL: the daemon with `bindings: {dir}` and a directory source, FLEET shared
# workspaces converged first, then COUNT new ones added one at a time; for each, from the
# manifest written to its binding's `uri` present and to its status Ready, and the gap between
# Ready and the binding. The work is done by bench/binding_latency.py; this script owns
# PostgreSQL and the work folder.
# Usage: bench/binding_latency.sh [COUNT=20] [FLEET=20]   (BUILD_DIR defaults to ./build;
#        KEEP=1 keeps the work folder with the daemon's log and results.json)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
COUNT="${1:-20}"
FLEET="${2:-20}"
build="${BUILD_DIR:-$root/build}"
operator="$build/tenant-operator"
[ -x "$operator" ] || { echo "build first: scripts/build.sh (missing $operator)" >&2; exit 2; }

work="$(mktemp -d /tmp/tm-bench.XXXXXX)"
chmod 755 "$work"
envfile="$work/pg.env"
cleanup() {
  # The helper stops its daemon itself; this is for an interrupted run.
  if [ -f "$work/daemon.pids" ]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$work/daemon.pids"
    sleep 1
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$work/daemon.pids"
  fi
  "$root/scripts/pg-private.sh" stop "$envfile" || true
  if [ -n "${KEEP:-}" ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

TM_PG_FSYNC=off "$root/scripts/pg-private.sh" start "$envfile"
set -a; . "$envfile"; set +a
export TM_MASTER_KEY="bench-master-key-0123456789abcdef0123456789"

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); operator: $operator"
python3 "$root/bench/binding_latency.py" --operator "$operator" --root "$root" --work "$work" \
  --count "$COUNT" --fleet "$FLEET"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
