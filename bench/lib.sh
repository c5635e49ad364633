# What the benchmarks against one private PostgreSQL share (bench/pg_converge.sh,
# bench/daemon_latency.sh, bench/binding_latency.sh): the operator to run, a work folder removed
# on the way out, the private PostgreSQL (scripts/pg-private.sh) and the machine's load.
# Sourced, not run: the script sets `root` (the checkout) first, then `. "$root/bench/lib.sh"`.

# Sets `build` (BUILD_DIR, else ./build) and `operator`, or stops the script if it is not built.
bench_operator() {
  build="${BUILD_DIR:-$root/build}"
  operator="$build/tenant-operator"
  [ -x "$operator" ] || { echo "build first: scripts/build.sh (missing $operator)" >&2; exit 2; }
}

# Sets `work` (a fresh /tmp folder) and `envfile` (the private PostgreSQL's variables), and
# removes both on exit through bench_cleanup; "quiet": KEEP=1 keeps the folder without saying so.
bench_workdir() {
  work="$(mktemp -d /tmp/tm-bench.XXXXXX)"
  chmod 755 "$work"
  envfile="$work/pg.env"
  trap "bench_cleanup ${1:-}" EXIT
}

# Stops the daemons listed in WORK/daemon.pids (a Python helper stops its own daemons; this is
# for an interrupted run), then PostgreSQL; removes the work folder unless KEEP is set.
bench_cleanup() {
  if [ -f "$work/daemon.pids" ]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$work/daemon.pids"
    sleep 1
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$work/daemon.pids"
  fi
  "$root/scripts/pg-private.sh" stop "$envfile" || true
  local more
  for more in "$work"/pg-*.env; do
    [ -f "$more" ] && { "$root/scripts/pg-private.sh" stop "$more" || true; }
  done
  if [ -z "${KEEP:-}" ]; then
    rm -rf "$work"
  elif [ "${1:-}" != quiet ]; then
    echo "work folder kept: $work" >&2
  fi
}

# Starts the private PostgreSQL (fsync off; $1: extra postgresql.conf lines, else those of
# TM_PG_EXTRA_CONF if set) and exports its PG* variables, TM_PG_DSN, TM_PG_DIR and the
# benchmarks' TM_MASTER_KEY.
bench_pg_start() {
  TM_PG_FSYNC=off TM_PG_EXTRA_CONF="${1-${TM_PG_EXTRA_CONF:-}}" "$root/scripts/pg-private.sh" start "$envfile"
  set -a; . "$envfile"; set +a
  export TM_MASTER_KEY="bench-master-key-0123456789abcdef0123456789"
}

# Starts one more private PostgreSQL (fsync off; $2: extra postgresql.conf lines) for a benchmark
# over several servers (bench/clusters_converge.sh): its variables go to WORK/pg-$1.env and are
# exported nowhere; bench_cleanup stops it.
bench_pg_start_named() {
  TM_PG_FSYNC=off TM_PG_EXTRA_CONF="${2:-}" "$root/scripts/pg-private.sh" start "$work/pg-$1.env"
}

bench_say_machine() {
  echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); operator: $operator"
}

bench_say_load_at_end() {
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
