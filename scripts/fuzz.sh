#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz/ for SECONDS each (default 60) over its committed
# seed corpus (tests/fuzz/corpus/<name>/), with AddressSanitizer and UndefinedBehaviorSanitizer.
#
#   scripts/fuzz.sh [SECONDS]
#
# Needs clang (Debian's `clang` package: libFuzzer comes with it). Builds in build-fuzz/ (or
# $TM_FUZZ_BUILD_DIR). New inputs the fuzzers find are kept in <build>/fuzz-corpus/<name>/, not in
# the repository; crashes are saved as tests/fuzz/crashes/<name>/crash-<sha1> (also leak-, oom-,
# timeout-). To keep a crash as a regression test once it is fixed, move it into
# tests/fuzz/corpus/<name>/ (CI replays every corpus file: ctest -L fuzz). To add what a run
# found to the seeds, minimise it first:
#   <build>/<name>_fuzz -merge=1 tests/fuzz/corpus/<name> <build>/fuzz-corpus/<name>
#
# Environment: TM_FUZZ_TARGETS="webhook render" runs only those; TM_FUZZ_JOBS (default 2) build
# jobs. Exit status 1 when a target crashed, 2 when the build failed.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
  echo "usage: $0 [SECONDS]  (a positive number of seconds per target; default 60)" >&2
  exit 64
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TM_FUZZ_BUILD_DIR:-$root/build-fuzz}"
targets="${TM_FUZZ_TARGETS:-manifest config webhook label_selector render txn_control}"
jobs="${TM_FUZZ_JOBS:-2}"

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found; install Debian's clang (apt-get install clang)" >&2
  exit 2
fi

mkdir -p "$build"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
CC=clang CXX=clang++ cmake -S "$root" -B "$build" "${generator[@]}" \
  -DTM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTM_PCH=OFF >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2
  exit 2
}
build_targets=()
for name in $targets; do build_targets+=("${name}_fuzz"); done
cmake --build "$build" -j "$jobs" --target "${build_targets[@]}" || exit 2

summary=()
crashed=0
for name in $targets; do
  seeds="$root/tests/fuzz/corpus/$name"
  work="$build/fuzz-corpus/$name"
  crashes="$root/tests/fuzz/crashes/$name"
  log="$build/fuzz-$name.log"
  mkdir -p "$work" "$crashes"
  # A dictionary of the input's syntax: tests/fuzz/<name>.dict, or yaml.dict for YAML inputs.
  dict=()
  case "$name" in manifest | config | render) dictfile=yaml ;; *) dictfile="$name" ;; esac
  [[ -f "$root/tests/fuzz/$dictfile.dict" ]] && dict=(-dict="$root/tests/fuzz/$dictfile.dict")
  before=$(find "$crashes" -type f | wc -l)
  echo "== $name: ${seconds}s (log $log)"
  status=0
  # The first folder receives new inputs; the committed seeds are only read.
  "$build/${name}_fuzz" "$work" "$seeds" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  after=$(find "$crashes" -type f | wc -l)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  if [[ $status -ne 0 || $after -gt $before ]]; then
    crashed=1
    summary+=("$(printf '%-15s CRASH  runs=%s cov=%s new=%d (see %s, %s)' "$name" "${runs:-?}" \
      "${cov:-?}" $((after - before)) "$crashes" "$log")")
    grep -m1 -E 'ERROR: |fuzz property violated|SUMMARY: ' "$log" >&2 || true
  else
    summary+=("$(printf '%-15s ok     runs=%s cov=%s corpus=%s' "$name" "${runs:-?}" "${cov:-?}" \
      "$(find "$work" -type f | wc -l)")")
  fi
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit $crashed
