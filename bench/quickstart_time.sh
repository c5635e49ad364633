#!/usr/bin/env bash
# The quick start's time from a machine without the project's packages to the first Ready
# workspace (bench/README.md, "Build time"): what a newcomer waits for between `git clone` and
# a running tenant.
#
#   bench/quickstart_time.sh --purge-packages      # as root, or a user with sudo
#   KEEP=1 keeps the clone and its logs (the folder is printed)
#
# DESTRUCTIVE for the machine, not for this repository: it first purges (apt-get purge, then
# autoremove --purge) every package scripts/install-deps.sh installs, except the few a fresh
# Debian 12 image already has and this script itself needs (git to clone, curl, python3,
# ca-certificates). Compilers, CMake, the -dev libraries and PostgreSQL go, so run it only when
# nobody else builds or tests on the machine; the quick start installs them again.
#
# Then, timed from just before the clone: a fresh local clone of HEAD, scripts/quickstart.sh in it
# (installs the packages, builds the product binaries, starts a private PostgreSQL and the
# controller on examples/), until GET /api/v1/workspaces on 127.0.0.1:8080 shows a workspace
# with phase Ready. ccache is switched off (a fresh machine has no cache). It prints the time of
# each step and stops the controller and the private PostgreSQL it started.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
api="http://127.0.0.1:8080"
keep_installed=(git ca-certificates curl python3)

if [ "${1:-}" != "--purge-packages" ]; then
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
  echo "refusing to run without --purge-packages" >&2
  exit 2
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if curl -fsS -o /dev/null "$api/healthz" 2>/dev/null; then
  echo "something already answers on $api; stop it first" >&2
  exit 2
fi

# 1. Back to a machine without the project's packages.
mapfile -t packages < <("$repo/scripts/install-deps.sh" --no-browser --list)
purge=()
for p in "${packages[@]}"; do
  for k in "${keep_installed[@]}"; do [ "$p" = "$k" ] && continue 2; done
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && purge+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
if [ ${#purge[@]} -gt 0 ]; then
  echo "purging: ${purge[*]}"
  $sudo apt-get purge -y -qq "${purge[@]}" >/dev/null
fi
$sudo apt-get autoremove --purge -y -qq >/dev/null
# How fresh that is: what the quick start's install will have to bring in.
to_install="$(apt-get -s install --no-install-recommends "${packages[@]}" 2>/dev/null |
  sed -n 's/^\([0-9]*\) newly installed.*/\1/p')"
echo "the quick start will install ${to_install:-?} packages"

# 2. Clone and run the quick start, every line of its output stamped with the time it appeared.
work="$(mktemp -d "${TMPDIR:-/tmp}/tm-quickstart.XXXXXX")"
clone="$work/tenant-master"
log="$work/quickstart.log"
qs=""
cleanup() {
  if [ -n "$qs" ] && kill -0 "$qs" 2>/dev/null; then
    kill -TERM "$qs" 2>/dev/null || true
    wait "$qs" 2>/dev/null || true
  fi
  if [ -f "$clone/.run/pg.env" ]; then
    (cd "$clone" && scripts/pg-private.sh stop .run/pg.env >/dev/null 2>&1) || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }

t0="$(date +%s.%N)"
git clone --quiet "$repo" "$clone"
cd "$clone"
CCACHE_DISABLE=1 scripts/quickstart.sh > >(stamp >"$log") 2>&1 &
qs=$!

ready=""
while [ -z "$ready" ]; do
  if ! kill -0 "$qs" 2>/dev/null; then
    echo "the quick start ended before a workspace was Ready; its output:" >&2
    cut -d' ' -f2- "$log" >&2
    exit 1
  fi
  if curl -fsS "$api/api/v1/workspaces" 2>/dev/null | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
sys.exit(0 if any(w.get("status", {}).get("phase") == "Ready" for w in items) else 1)' 2>/dev/null; then
    ready="$(date +%s.%N)"
  else
    sleep 0.2
  fi
done

# 3. The steps, from the quick start's own banners (scripts/quickstart.sh prints them).
python3 - "$t0" "$ready" "$log" "${to_install:-?}" "$(nproc)" <<'PY'
import sys
t0, ready, log, to_install, cores = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
marks = {}
for line in open(log):
    stamp, _, text = line.rstrip("\n").partition(" ")
    for key, banner in (("build", "== building"), ("run", "== tenant-operator")):
        if text.startswith(banner) and key not in marks:
            marks[key] = float(stamp)
build = marks.get("build", t0)
run = marks.get("run", build)
print(f"quick start from a machine without the project's packages ({to_install} to install), {cores} cores:")
print(f"  clone and packages (apt):                  {build - t0:6.1f} s")
print(f"  build of the product binaries:             {run - build:6.1f} s")
print(f"  PostgreSQL, controller, first Ready:       {ready - run:6.1f} s")
print(f"  total, clone to the first Ready workspace: {ready - t0:6.1f} s   (target: under 180 s)")
PY
