#!/usr/bin/env bash
# The README's second command: install what is missing, build with warnings as errors, run
# every test (unit, integration against private PostgreSQL servers the tests start themselves,
# the simulator, and end to end with the built binaries).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
BUILD_DIR="${BUILD_DIR:-build-test}" scripts/build.sh -DTM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
ctest --test-dir "${BUILD_DIR:-build-test}" --output-on-failure -j 2 --timeout 900
