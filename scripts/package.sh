#!/usr/bin/env bash
# Builds the Debian package tenant-master (docs/operating.md): the three binaries and their man
# pages in a build folder, then `cpack -G DEB`. Prints the .deb's path.
#   scripts/package.sh                          # build/ (configured without the tests if new)
#   BUILD_DIR=build-test scripts/package.sh     # another build folder
#   OUT_DIR=dist scripts/package.sh             # where the .deb goes (default <build>/packages)
# Install it with `apt-get install ./tenant-master_<version>-1_<arch>.deb` (root).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
out_dir="${OUT_DIR:-$build_dir/packages}"
# dpkg-shlibdeps (dpkg-dev) computes the dependencies.
if [ "${TM_DEPS_INSTALLED:-0}" != 1 ]; then scripts/install-deps.sh --no-browser; fi

configure=()
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  configure=(-DTM_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
BUILD_DIR="$build_dir" TARGETS="tenant-operator tenantctl portainer-sim tm_man_pages" \
  scripts/build.sh "${configure[@]}"
# cpack installs what the build made into its staging folder; it builds nothing more.
cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$out_dir" >&2
rm -rf "$out_dir/_CPack_Packages"
ls -1 "$out_dir"/tenant-master_*.deb
