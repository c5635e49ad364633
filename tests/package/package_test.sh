#!/usr/bin/env bash
# The Debian package end to end (issue 10, part 4; docs/operating.md): cpack builds the .deb from
# this build folder, apt installs it on this machine, the files, modes, user, versions, man pages
# and the unit (systemd-analyze verify, offline) are checked; then `dpkg --remove` must keep the
# state and the user and `dpkg --purge` must remove them. Whatever fails, the package is purged
# on the way out (trap). Root only: it installs a package; without root it is skipped (exit 77).
#   tests/package/package_test.sh BUILD_DIR VERSION
set -euo pipefail

build_dir="${1:?usage: $0 BUILD_DIR VERSION}"
version="${2:?usage: $0 BUILD_DIR VERSION}"
package=tenant-master
user=tenant-master
unit=/lib/systemd/system/tenant-operator.service

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: package_test installs a .deb on this machine and needs root (CI runs as root)"
  exit 77
fi
if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'installed'; then
  echo "FAIL: $package is already installed here; this test would replace and purge it." >&2
  echo "      A leftover of an interrupted run? Then: dpkg --purge $package" >&2
  exit 1
fi
for tool in cpack dpkg-deb dpkg-shlibdeps systemd-analyze apt-get man col runuser; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool is missing (scripts/install-deps.sh installs it)" >&2
    exit 1
  fi
done

source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/tm-package-test.XXXXXX)"
pg_env="$work/pg.env"
backups_existed=0
[ -e /var/backups/tenant-master ] && backups_existed=1
installed=0
cleanup() {
  local code=$?
  if [ -f "$pg_env" ]; then "$source_dir/scripts/pg-private.sh" stop "$pg_env" >/dev/null 2>&1 || true; fi
  if [ "$installed" = 1 ] && dpkg-query -W "$package" >/dev/null 2>&1; then
    echo "cleanup: purging $package" >&2
    dpkg --purge "$package" >/dev/null 2>&1 || echo "cleanup: dpkg --purge $package failed" >&2
  fi
  # The purge keeps a backups folder that holds files; this test's own never outlives it.
  if [ "$backups_existed" = 0 ]; then rm -rf /var/backups/tenant-master; fi
  rm -rf "$work"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # then the EXIT trap purges (ctest's timeout kills with SIGKILL: the next run names the leftover)

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
# expect_stat PATH MODE OWNER:GROUP TYPE: one line per path, with what it is when it is wrong.
expect_stat() {
  local path="$1" want="$2 $3 $4"
  if [ ! -e "$path" ]; then fail "$path is missing"; return; fi
  local got
  got="$(stat -c '%a %U:%G %F' "$path")"
  if [ "$got" = "$want" ]; then pass "$path $want"; else fail "$path is $got, want $want"; fi
}

# --- build the package --------------------------------------------------------------------------
echo "== cpack -G DEB in $build_dir"
if ! cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1; then
  cat "$work/cpack.log" >&2
  echo "FAIL: cpack" >&2
  exit 1
fi
deb="$(find "$work/out" -maxdepth 1 -name "${package}_*.deb" | head -n 1)"
if [ -z "$deb" ]; then
  cat "$work/cpack.log" >&2
  echo "FAIL: cpack made no ${package}_*.deb" >&2
  exit 1
fi
echo "built $(basename "$deb")"

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = "$package" ] && pass "Package: $package" || fail "Package is $(field Package)"
case "$(field Version)" in
  "$version"|"$version"-*) pass "Version: $(field Version)" ;;
  *) fail "Version is $(field Version), want $version[-N]" ;;
esac
depends="$(field Depends)"
for dep in libpq5 libssl3 adduser postgresql-client; do
  if grep -q "$dep" <<<"$depends"; then pass "Depends names $dep"; else fail "Depends lacks $dep: $depends"; fi
done
conffiles="$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles 2>/dev/null || true)"
for f in /etc/tenant-master/config.yaml /etc/tenant-master/environment; do
  if grep -qx "$f" <<<"$conffiles"; then pass "conffile $f"; else fail "$f is not a conffile"; fi
done
# Modes in the package itself (postinst also forces the environment file to 0600, so the
# installed file alone would hide a package that ships it readable).
expect_in_deb() {
  local path="$1" want="$2" line
  line="$(awk -v p="./$path" '$NF == p { print $1, $2 }' <<<"$contents")"
  if [ "$line" = "$want" ]; then pass "in the .deb: $path $want"; else fail "in the .deb: $path is '${line:-missing}', want $want"; fi
}
# Man pages in the package itself (an image may exclude /usr/share/man from installs, below).
contents="$(dpkg-deb -c "$deb")"
for name in tenant-operator tenantctl portainer-sim; do
  if grep -q "usr/share/man/man1/$name.1.gz" <<<"$contents"; then
    pass "the package holds $name(1)"
  else
    fail "the package has no man page for $name"
  fi
done

expect_in_deb etc/tenant-master/environment "-rw------- root/root"
expect_in_deb etc/tenant-master/config.yaml "-rw-r--r-- root/root"
for bin in tenant-operator tenantctl portainer-sim; do expect_in_deb "usr/bin/$bin" "-rwxr-xr-x root/root"; done
expect_in_deb lib/systemd/system/tenant-operator.service "-rw-r--r-- root/root"

# --- install --------------------------------------------------------------------------------------
echo "== apt-get install $deb"
installed=1
# apt, not dpkg -i: it waits for the dpkg lock and installs missing dependencies from the
# configured repositories only (the .deb is the one local package).
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "$deb" >"$work/install.log" 2>&1; then
  cat "$work/install.log" >&2
  echo "FAIL: installing the package" >&2
  exit 1
fi
grep -i "tenant-master:" "$work/install.log" || true

for bin in tenant-operator tenantctl portainer-sim; do
  expect_stat "/usr/bin/$bin" 755 root:root "regular file"
  got="$("/usr/bin/$bin" --version 2>&1)" || fail "$bin --version exited $?"
  if [ "$got" = "$bin $version" ]; then pass "$bin --version: $got"; else fail "$bin --version said '$got', want '$bin $version'"; fi
  if "/usr/bin/$bin" --help >"$work/help.txt" 2>&1 && grep -q "usage: $bin" "$work/help.txt"; then
    pass "$bin --help"
  else
    fail "$bin --help: $(head -c 300 "$work/help.txt")"
  fi
done

expect_stat /etc/tenant-master 755 root:root directory
expect_stat /etc/tenant-master/config.yaml 644 root:root "regular file"
expect_stat /etc/tenant-master/environment 600 root:root "regular file"
expect_stat /etc/tenant-master/fleet 755 root:root directory
expect_stat /var/lib/tenant-master 750 "$user:$user" directory
expect_stat /var/backups/tenant-master 700 "$user:$user" directory
expect_stat "$unit" 644 root:root "regular file"
expect_stat /usr/share/doc/tenant-master/docs/operating.md 644 root:root "regular file"

# The user: a system account, no login, its home the state folder.
if entry="$(getent passwd "$user")"; then
  IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
  [ "$uid" -lt 1000 ] && pass "$user is a system user (uid $uid)" || fail "$user has uid $uid (not a system user)"
  [ "$home" = /var/lib/tenant-master ] && pass "home $home" || fail "$user's home is $home"
  [ "$shell" = /usr/sbin/nologin ] && pass "shell $shell" || fail "$user's shell is $shell"
  [ "$(getent group "$user" | cut -d: -f3)" = "$gid" ] && pass "primary group $user" || fail "$user's primary group is gid $gid"
else
  fail "no user $user"
fi

# The sample config loads (strictly, as the operator reads it).
if /usr/bin/tenantctl validate -f /etc/tenant-master/fleet --config /etc/tenant-master/config.yaml \
    >"$work/validate.txt" 2>&1; then
  pass "the sample config loads: $(tail -n 1 "$work/validate.txt")"
else
  fail "the sample config does not load: $(cat "$work/validate.txt")"
fi
# The operator, as its user, accepts the packaged state folder and stops at the missing secrets
# (the template's are empty) with exit 2, naming the variable: it never starts half-configured.
set +e
runuser -u "$user" -- env -i PATH=/usr/bin:/bin TM_MASTER_KEY= TM_PG_DSN= TM_API_TOKEN= \
  /usr/bin/tenant-operator --config /etc/tenant-master/config.yaml --state-dir /var/lib/tenant-master \
  >"$work/operator.txt" 2>&1
code=$?
set -e
if [ "$code" = 2 ] && grep -q "TM_MASTER_KEY" "$work/operator.txt"; then
  pass "tenant-operator with the empty template: exit 2, $(head -n 1 "$work/operator.txt")"
else
  fail "tenant-operator with the empty template: exit $code, $(head -c 400 "$work/operator.txt")"
fi

# The packaged layout at work: the operator, as its user, with the packaged config and state
# folder, converges the examples' fleet once against a private PostgreSQL; what it writes (the
# sample config's stacks.directory) lands under /var/lib/tenant-master, the user's and private.
# (The unit's sandbox itself needs systemd as PID 1, which this machine may not run.)
if "$source_dir/scripts/pg-private.sh" start "$pg_env" >"$work/pg.log" 2>&1; then
  cp -r "$source_dir/examples/fleet/." /etc/tenant-master/fleet/
  dsn="$(sed -n "s/^TM_PG_DSN='\(.*\)'$/\1/p" "$pg_env")"
  set +e
  (cd / && runuser -u "$user" -- env -i PATH=/usr/bin:/bin \
    TM_MASTER_KEY="$(head -c 32 /dev/urandom | base64)" TM_PG_DSN="$dsn" TM_API_TOKEN=package-test \
    timeout 300 /usr/bin/tenant-operator --config /etc/tenant-master/config.yaml \
      --state-dir /var/lib/tenant-master --once) >"$work/once.txt" 2>&1
  code=$?
  set -e
  # Exit 1 is expected: the sample config has no bindings.dir for the erp product's shared
  # runtime (BindingsNotConfigured); every workspace must still be Ready.
  summary="$(grep -E '^[0-9]+ workspaces, ' "$work/once.txt" || true)"
  if [ "$code" -le 1 ] && grep -qE '^([0-9]+) workspaces, \1 ready, 0 invalid documents' <<<"$summary"; then
    pass "tenant-operator --once as $user: $summary"
  else
    fail "tenant-operator --once as $user: exit $code: $(head -c 1500 "$work/once.txt")"
  fi
  expect_stat /var/lib/tenant-master/deployments 700 "$user:$user" directory
  expect_stat /var/lib/tenant-master/deployments/acme 700 "$user:$user" directory
  rm -rf /etc/tenant-master/fleet/*
  "$source_dir/scripts/pg-private.sh" stop "$pg_env" >/dev/null 2>&1 || true
  rm -f "$pg_env"
else
  fail "could not start a private PostgreSQL: $(tail -n 5 "$work/pg.log")"
fi

# Man pages where man finds them, unless this image keeps /usr/share/man out of installs. Each
# page's SYNOPSIS is its binary's --help: the first line of --help must be on the page.
for name in tenant-operator tenantctl portainer-sim; do
  page="/usr/share/man/man1/$name.1.gz"
  if [ -f "$page" ]; then
    first="$("/usr/bin/$name" --help | head -n 1)"
    # Read whole, then searched: `… | grep -q` under pipefail fails when grep's early exit
    # kills the writer with SIGPIPE (it did, once the tenantctl page grew).
    shown="$(MANWIDTH=200 man -l "$page" 2>/dev/null | col -bx)"
    if grep -qF -- "$first" <<<"$shown"; then
      pass "$page shows '$first'"
    else
      fail "$page does not show the first line of $name --help ('$first')"
    fi
    found="$(man -w "$name" 2>/dev/null || true)"
    [ "$found" = "$page" ] && pass "man -w $name" || fail "man -w $name gave '$found'"
  elif grep -rqs "path-exclude.*/usr/share/man" /etc/dpkg/dpkg.cfg.d/; then
    echo "note: $page not installed: dpkg excludes /usr/share/man on this machine (checked in the .deb above)"
  else
    fail "$page is missing"
  fi
done
if grep -q 'etc/tenant\\-master/environment' <<<"$(zcat /usr/share/man/man1/tenant-operator.1.gz 2>/dev/null)"; then
  pass "tenant-operator(1) names /etc/tenant-master/environment"
elif [ -f /usr/share/man/man1/tenant-operator.1.gz ]; then
  fail "tenant-operator(1) has no FILES section naming /etc/tenant-master/environment"
fi

# The unit: what the issue asks of it, then systemd's own verdict, offline (no systemd as PID 1
# is needed: `verify` loads the file, checks every directive, the binary and the man page).
for line in User=tenant-master ProtectSystem=strict NoNewPrivileges=yes ProtectHome=yes \
    PrivateTmp=yes PrivateDevices=yes CapabilityBoundingSet= StateDirectory=tenant-master \
    StateDirectoryMode=0750 EnvironmentFile=/etc/tenant-master/environment \
    SystemCallFilter=@system-service Restart=on-failure \
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" \
    "ExecStart=/usr/bin/tenant-operator --config /etc/tenant-master/config.yaml --state-dir /var/lib/tenant-master"; do
  if grep -qxF "$line" "$unit"; then pass "unit: $line"; else fail "the unit lacks the line $line"; fi
done
if (cd / && systemd-analyze verify "$unit") >"$work/verify.txt" 2>&1 && [ ! -s "$work/verify.txt" ]; then
  pass "systemd-analyze verify $unit"
else
  fail "systemd-analyze verify $unit: $(cat "$work/verify.txt")"
fi
# The exposure score of the sandbox (0 best, 10 worst; "OK" is below 2.0 or so). A setting
# dropped from the unit raises it.
if (cd / && systemd-analyze security --offline=true --threshold=20 "$unit") >"$work/security.txt" 2>&1; then
  pass "$(grep -o 'Overall exposure level.*' "$work/security.txt")"
else
  fail "systemd-analyze security: $(tail -n 3 "$work/security.txt")"
fi

# --- remove: the state, the backups and the user stay ----------------------------------------------
echo "== dpkg --remove $package"
touch /var/lib/tenant-master/kept-on-remove
echo "not a real backup" >/var/backups/tenant-master/acme.dump
if dpkg --remove "$package" >"$work/remove.log" 2>&1; then pass "dpkg --remove"; else fail "dpkg --remove: $(cat "$work/remove.log")"; fi
[ ! -e /usr/bin/tenant-operator ] && pass "/usr/bin/tenant-operator removed" || fail "/usr/bin/tenant-operator is still there after remove"
[ ! -e "$unit" ] && pass "$unit removed" || fail "$unit is still there after remove"
[ -e /var/lib/tenant-master/kept-on-remove ] && pass "remove keeps /var/lib/tenant-master" || fail "remove deleted /var/lib/tenant-master"
getent passwd "$user" >/dev/null && pass "remove keeps the user" || fail "remove deleted the user $user"
[ -f /etc/tenant-master/environment ] && pass "remove keeps the conffiles" || fail "remove deleted /etc/tenant-master/environment"

# --- purge: the state, the config and the user go; backups stay ----------------------------------
echo "== dpkg --purge $package"
if dpkg --purge "$package" >"$work/purge.log" 2>&1; then pass "dpkg --purge"; else fail "dpkg --purge: $(cat "$work/purge.log")"; fi
installed=0
for path in /var/lib/tenant-master /etc/tenant-master /usr/bin/tenantctl /usr/bin/portainer-sim \
    /usr/share/man/man1/tenant-operator.1.gz /usr/share/doc/tenant-master; do
  [ ! -e "$path" ] && pass "purged $path" || fail "$path is still there after purge"
done
! getent passwd "$user" >/dev/null && pass "purged the user $user" || fail "the user $user is still there after purge"
! getent group "$user" >/dev/null && pass "purged the group $user" || fail "the group $user is still there after purge"
[ -f /var/backups/tenant-master/acme.dump ] && pass "purge keeps a backups folder with backups" || fail "purge deleted /var/backups/tenant-master/acme.dump"
grep -q "kept /var/backups/tenant-master" "$work/purge.log" && pass "purge says it kept the backups" || fail "purge did not say it kept the backups: $(cat "$work/purge.log")"

if [ "$failures" -gt 0 ]; then
  echo "package_test: $failures check(s) failed" >&2
  exit 1
fi
echo "package_test: all checks passed"
