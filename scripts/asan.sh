#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run (docs/decisions.md#hardening-ii-issue-9):
# the unit tests, the integration tests but the load benchmarks (CTest label `asan`,
# tests/CMakeLists.txt) and the fuzz corpus replays (label `fuzz`), in their own build directory.
# scripts/test.sh, and so CI, runs it after the normal build and tests; run it alone with
#   scripts/asan.sh                     # build-asan/, then every test labelled asan or fuzz
#   BUILD_DIR=/tmp/asan scripts/asan.sh # another build directory
#   scripts/asan.sh -R store_itest      # extra arguments go to ctest: one test only
#   build-asan/tm_unit_tests -tc='*schema*'   # or a binary directly, after exporting the
#                                             # ASAN_OPTIONS and UBSAN_OPTIONS below
# The build: RelWithDebInfo (the code CI tests otherwise), -DTM_SANITIZERS=address;undefined
# (cmake/Sanitizers.cmake: -fno-omit-frame-pointer, -fno-sanitize-recover=all), -Werror. The
# binaries the end-to-end tests start (tenant-operator, tenantctl, portainer-sim) are built the
# same way, so a finding in them fails the test that runs them. The first finding ends the
# process with a report and a stack; the test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${BUILD_DIR:-build-asan}"
# scripts/test.sh has installed the packages already (g++ brings libasan and libubsan).
if [ -z "${TM_DEPS_INSTALLED:-}" ]; then scripts/install-deps.sh; fi
t=$SECONDS
BUILD_DIR="$BUILD_DIR" scripts/build.sh -DTM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DTM_SANITIZERS=address;undefined"
echo "asan.sh: build ($BUILD_DIR) took $(( SECONDS - t )) s" >&2

# detect_leaks: LeakSanitizer at each instrumented process's exit; check_initialization_order,
# strict_init_order: a global constructor reading another file's global before it is built;
# detect_stack_use_after_return: a pointer to a returned function's local used later.
# print_stacktrace: UBSan reports carry a stack (ASan's always do); halt_on_error is what
# -fno-sanitize-recover=all makes of every check, said again for code built without it.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
t=$SECONDS
ctest --test-dir "$BUILD_DIR" --output-on-failure -j 2 --timeout 900 -L 'asan|fuzz' "$@"
echo "asan.sh: tests took $(( SECONDS - t )) s" >&2
