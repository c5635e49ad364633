#!/usr/bin/env bash
# The README's second command, and CI's (.ci/run): install what is missing, build with warnings
# as errors, run every test (unit, integration against private PostgreSQL servers the tests start
# themselves, the simulator, and end to end with the built binaries); then build the tree again
# with AddressSanitizer + UndefinedBehaviorSanitizer in a second directory and run the unit
# tests, the integration tests but the load benchmarks, and the fuzz corpus replays there
# (scripts/asan.sh, which also runs alone). One build after the other, each on every core: two
# at once would only share the same cores and double the memory. Each step prints its time.
#   BUILD_DIR=DIR scripts/test.sh   # DIR (default build-test) and DIR-asan (default build-asan)
#   TM_ASAN=0 scripts/test.sh       # skip the sanitizer run (a quick local check; CI keeps it)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build-test}"
asan_dir="${ASAN_BUILD_DIR:-${BUILD_DIR:+$BUILD_DIR-asan}}"
asan_dir="${asan_dir:-build-asan}"
step() { echo "test.sh: $1 took $(( SECONDS - $2 )) s" >&2; }

start=$SECONDS
scripts/install-deps.sh
t=$SECONDS; BUILD_DIR="$build_dir" scripts/build.sh -DTM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
step "build ($build_dir)" $t
t=$SECONDS; ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 900
step "tests" $t
if [ "${TM_ASAN:-1}" != 0 ]; then
  t=$SECONDS; TM_DEPS_INSTALLED=1 BUILD_DIR="$asan_dir" scripts/asan.sh
  step "sanitizer build and tests ($asan_dir)" $t
fi
step "all" $start
