#!/usr/bin/env bash
# Clean-build time of the tree (bench/README.md, "Build time"):
#   1. the product binaries alone (tenant-operator, tenantctl, portainer-sim: -DTM_BUILD_TESTS=OFF,
#      what scripts/quickstart.sh builds);
#   2. the whole tree with the tests (what scripts/test.sh builds).
# Each is configured in a fresh folder (RelWithDebInfo, -DTM_WERROR=ON, Ninja, no ccache) and built
# with -j JOBS; the build is timed (wall, and user + sys CPU of every process it ran), and every
# compile and link goes through bench/tu_time.sh, so the CPU time is also shown per target and for
# the slowest translation units.
#
#   bench/build_time.sh [SOURCE_DIR] [product|all|both]    # SOURCE_DIR: default this repository
#   JOBS=2 (default: nproc)   KEEP=1 keeps the build folders   OUT=file also writes the report there
#   CMAKE_ARGS="-DTM_PCH=OFF -DTM_UNITY_BUILD=OFF"   more configure options (e.g. to switch off
#   one of the build-time measures of cmake/BuildTime.cmake and see what it is worth)
#
# CPU time is the comparable figure when other builds share the machine; wall time is only
# meaningful on a quiet one (the load average is printed before and after).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "${1:-$here/..}" && pwd)"
what="${2:-both}"
jobs="${JOBS:-$(nproc)}"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package: time)" >&2; exit 2; }
command -v ninja >/dev/null || { echo "needs ninja (scripts/install-deps.sh)" >&2; exit 2; }
read -r -a extra_args <<<"${CMAKE_ARGS:-}"
export CCACHE_DISABLE=1   # a clean build, even if a launcher elsewhere would use ccache
report="$(mktemp)"
trap 'rm -f "$report"' EXIT

measure() {  # measure NAME CMAKE_ARGS...
  local name=$1
  shift
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/tm-build-time-$name.XXXXXX")"
  local log="$dir/tu_times.log"
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTM_WERROR=ON \
    "-DCMAKE_CXX_COMPILER_LAUNCHER=$here/tu_time.sh;$log" \
    "-DCMAKE_CXX_LINKER_LAUNCHER=$here/tu_time.sh;$log" "$@" "${extra_args[@]}" >"$dir/configure.log"
  local load_before
  load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -o "$dir/build.time" -f '%e %U %S' cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1 ||
    { tail -30 "$dir/build.log" >&2; echo "build failed; see $dir" >&2; exit 1; }
  python3 - "$name" "$dir" "$src" "$jobs" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY' | tee -a "$report"
import collections, os, re, sys
name, build, src, jobs, load_before, load_after = sys.argv[1:]
wall, user, sys_ = (float(x) for x in open(f"{build}/build.time").read().split()[-3:])
per_target = collections.defaultdict(float)
per_tu = []
for line in open(f"{build}/tu_times.log"):
    parts = line.split()
    if len(parts) < 2 or not re.match(r"^[0-9.]+$", parts[0]):
        continue  # "Command exited with non-zero status" lines
    cpu = float(parts[0]) + float(parts[1])
    out = parts[2] if len(parts) > 2 else "?"
    m = re.search(r"CMakeFiles/([^/]+)\.dir/(.*)$", out)
    if m:
        target, obj = m.group(1), m.group(2)
        per_tu.append((cpu, obj.replace(".o", "") if obj.endswith(".o") else obj, target))
    else:
        target = out.rsplit("/", 1)[-1] + " (link)"
    per_target[target] += cpu
logged = sum(per_target.values())
print(f"## {name}: {src} {os.environ.get('CMAKE_ARGS', '')}".rstrip())
print(f"wall {wall:.1f} s, CPU {user + sys_:.1f} s (user {user:.1f} + sys {sys_:.1f}), -j{jobs}; "
      f"load average before {load_before}, after {load_after}")
print(f"compiles and links: {logged:.1f} s CPU in {len(per_tu)} translation units")
print()
print("| target | CPU s |")
print("| --- | --- |")
for target, cpu in sorted(per_target.items(), key=lambda kv: -kv[1]):
    print(f"| {target} | {cpu:.1f} |")
print()
print("slowest translation units (CPU s):")
for cpu, obj, target in sorted(per_tu, reverse=True)[:15]:
    print(f"  {cpu:5.1f}  {target}: {obj}")
print()
PY
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: $dir"; else rm -rf "$dir"; fi
}

case "$what" in
  product) measure product -DTM_BUILD_TESTS=OFF ;;
  all) measure all -DTM_BUILD_TESTS=ON ;;
  both)
    measure product -DTM_BUILD_TESTS=OFF
    measure all -DTM_BUILD_TESTS=ON
    ;;
  *) echo "usage: $0 [SOURCE_DIR] [product|all|both]" >&2; exit 2 ;;
esac
if [ -n "${OUT:-}" ]; then cp "$report" "$OUT"; fi
