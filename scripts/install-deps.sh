#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build, the tests and the quick start need and
# this machine lacks. Safe to run again: it asks apt only when something is missing.
set -euo pipefail

# g++ brings the sanitizers' runtimes (libasan8, libubsan1, liblsan0, libtsan2, through
# libgcc-12-dev): scripts/asan.sh, which CI runs, and scripts/tsan.sh need no other package.
packages=(
  g++ cmake ninja-build pkg-config git ca-certificates
  libboost1.81-dev libboost-json1.81-dev libpq-dev libcpp-httplib-dev libyaml-cpp-dev
  libspdlog-dev doctest-dev libssl-dev libargon2-dev libcrypt-dev
  postgresql-15 postgresql-client-15 python3 bc curl
  pgbouncer
)

# --list: print the packages, one a line, and install nothing (bench/quickstart_time.sh uses it).
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "installing: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
