#!/usr/bin/env bash
# A compiler and linker launcher for bench/build_time.sh: runs the command after the log file's
# name and appends one line "USER_S SYS_S OUTPUT" to that file (OUTPUT is the argument after -o),
# so a build's CPU time can be summed per translation unit and per target. Set it as
#   -DCMAKE_CXX_COMPILER_LAUNCHER="bench/tu_time.sh;/abs/log"
#   -DCMAKE_CXX_LINKER_LAUNCHER="bench/tu_time.sh;/abs/log"
set -euo pipefail
log=$1
shift
out=""
prev=""
for arg in "$@"; do
  if [ "$prev" = "-o" ]; then out=$arg; fi
  prev=$arg
done
# /usr/bin/time appends its line even when the command fails, and exits with the command's status.
exec /usr/bin/time -a -o "$log" -f "%U %S $out" "$@"
