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
. "$root/bench/lib.sh"
COUNT="${1:-20}"
FLEET="${2:-20}"
bench_operator
bench_workdir
bench_pg_start

bench_say_machine
python3 "$root/bench/binding_latency.py" --operator "$operator" --root "$root" --work "$work" \
  --count "$COUNT" --fleet "$FLEET"
bench_say_load_at_end
