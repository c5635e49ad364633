#!/usr/bin/env bash
# A private PostgreSQL 15 for the quick start and the benchmarks.
#
#   scripts/pg-private.sh start ENVFILE   initdb into a fresh /tmp folder, start it on a free
#                                         loopback port, write TM_PG_DSN, PGHOST... to ENVFILE
#   scripts/pg-private.sh stop ENVFILE    stop it and remove its folder
#
# TM_PG_FSYNC=off and TM_PG_EXTRA_CONF='lines' adjust postgresql.conf (the benchmarks use them).
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user; its
# folder lives under /tmp because that user may not be able to enter the checkout's parents.
set -euo pipefail

bindir="${TM_PG_BINDIR:-/usr/lib/postgresql/15/bin}"
[ -x "$bindir/initdb" ] || bindir="$(pg_config --bindir)"

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A port nothing listens on, tried in random order: two scripts starting at once (CTest runs
# tests in parallel) rarely pick the same one, and start() tries another if they do.
free_port() {
  local port
  for port in $(shuf -i 15432-15999); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "no free port in 15432-15999" >&2
  return 1
}

start() {
  local envfile="$1"
  local dir port password
  dir="$(mktemp -d /tmp/tm-pg.XXXXXX)"
  port="$(free_port)"
  password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  printf '%s\n' "$password" > "$dir/pwfile"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres -E UTF8 --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$dir/pwfile" >"$dir/initdb.log"
  rm -f "$dir/pwfile"
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
shared_preload_libraries = 'pg_stat_statements'
fsync = ${TM_PG_FSYNC:-on}
${TM_PG_EXTRA_CONF:-}
CONF
  # The port is a command-line option, so another try needs no edit of the file: a port taken
  # between the check and the start (another test's server) fails the start, and the next try
  # takes another one.
  local attempt
  for attempt in 1 2 3 4 5; do
    if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w start \
      >/dev/null; then
      break
    fi
    if [ "$attempt" -eq 5 ]; then
      echo "pg-private.sh: PostgreSQL did not start (log: $dir/server.log)" >&2
      return 1
    fi
    port="$(free_port)"
  done
  umask 077
  cat >"$envfile" <<ENV
TM_PG_DIR=$dir
TM_PG_PORT=$port
TM_PG_DSN='host=127.0.0.1 port=$port user=postgres password=$password dbname=postgres'
PGHOST=127.0.0.1
PGPORT=$port
PGUSER=postgres
PGPASSWORD=$password
PGDATABASE=postgres
ENV
  echo "PostgreSQL 15 running on 127.0.0.1:$port (data in $dir/data, log $dir/server.log)" >&2
}

stop() {
  local envfile="$1"
  [ -f "$envfile" ] || return 0
  # shellcheck disable=SC1090
  . "$envfile"
  if [ -n "${TM_PG_DIR:-}" ] && [ -d "$TM_PG_DIR/data" ]; then
    as_pg "$bindir/pg_ctl" -D "$TM_PG_DIR/data" -m fast -w stop >/dev/null || true
    rm -rf "$TM_PG_DIR"
  fi
  rm -f "$envfile"
}

case "${1:-}" in
  start) start "${2:?envfile}" ;;
  stop) stop "${2:?envfile}" ;;
  *) echo "usage: $0 start|stop ENVFILE" >&2; exit 2 ;;
esac
