#!/usr/bin/env bash
# ThreadSanitizer run of the concurrent parts (docs/decisions.md#hardening-ii-issue-9): the work
# queue, the manager, the daemon and the HTTP server, in their own build directory. Not part of
# CI (a TSan build of the tree takes long on 2 cores); run it after touching threads:
#   scripts/tsan.sh            # build-tsan/, the unit tests of the queue, manager and daemon,
#                              # then the HTTP server's integration tests
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${BUILD_DIR:-build-tsan}"
scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DTM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTM_SANITIZERS=thread
cmake --build "$BUILD_DIR" -j "$(nproc)" --target tm_unit_tests http_server_itest http_abuse_itest
# halt_on_error: the first race fails the run; second_deadlock_stack: both stacks of a lock cycle.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
"$BUILD_DIR/tm_unit_tests" -tc="queue:*,work queue:*,manager:*,daemon:*"
"$BUILD_DIR/http_server_itest"
"$BUILD_DIR/http_abuse_itest"
echo "tsan: no data race reported"
