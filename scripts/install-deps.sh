#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build, the tests and the quick start need and
# this machine lacks, then the browser test's driver from the npm registry (tests/browser/).
# Safe to run again: it asks apt only when something is missing, and npm only when
# tests/browser/package-lock.json changed.
set -euo pipefail

# g++ brings the sanitizers' runtimes (libasan8, libubsan1, liblsan0, libtsan2, through
# libgcc-12-dev): scripts/asan.sh, which CI runs, and scripts/tsan.sh need no other package.
packages=(
  g++ cmake ninja-build pkg-config git ca-certificates
  libboost1.81-dev libboost-json1.81-dev libpq-dev libcpp-httplib-dev libyaml-cpp-dev
  libspdlog-dev doctest-dev libssl-dev libargon2-dev libcrypt-dev
  postgresql-15 postgresql-client-15 python3 bc curl
  pgbouncer
  # The Debian package (scripts/package.sh, tests/package/): dpkg-dev has dpkg-shlibdeps, systemd
  # has `systemd-analyze verify`, man-db `man -w`, and adduser is what the package's maintainer
  # scripts use.
  dpkg-dev systemd man-db adduser
)

# The dashboard's browser test (tests/browser/, issue 14): Debian's chromium and firefox-esr,
# driven by puppeteer-core on Node (18 or later). A `node` and `npm` already on PATH are used as they are;
# otherwise Debian's nodejs and npm are installed. --no-browser leaves all three out (a machine
# that only builds and runs the product).
browser=1
list=0
for arg in "$@"; do
  case "$arg" in
    --no-browser) browser=0 ;;
    --list) list=1 ;;
    *) echo "usage: $0 [--no-browser] [--list]" >&2; exit 2 ;;
  esac
done
if [ "$browser" = 1 ]; then
  packages+=(chromium firefox-esr)
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
fi

# --list: print the packages, one a line, and install nothing (bench/quickstart_time.sh uses it).
if [ "$list" = 1 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# puppeteer-core (pinned by tests/browser/package-lock.json) into tests/browser/node_modules, as
# the user running this (no root needed), only when the lock file changed since the last `npm ci`.
# puppeteer-core downloads no browser; PUPPETEER_SKIP_DOWNLOAD says so again.
if [ "$browser" = 1 ]; then
  browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$node_major" -lt 18 ]; then
    echo "node $(node --version) is too old for tests/browser (18 or later)" >&2
    exit 1
  fi
  stamp="$browser_dir/node_modules/.tm-package-lock.sha256"
  want="$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing tests/browser/node_modules (npm ci)" >&2
    (cd "$browser_dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >&2
    echo "$want" >"$stamp"
  fi
fi
