#!/usr/bin/env bash
# Wall time of `vmstack dump` against gdb's `thread apply all bt` on the deep fixture.
# Usage: dump_vs_gdb.sh [VMSTACK [DEEP]]   (runs: VMSTACK_RUNS=20, GDB_RUNS=5)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
vmstack=${1:-$root/build/vmstack}
deep=${2:-$(dirname "$vmstack")/bench/deep}
vruns=${VMSTACK_RUNS:-20}
gruns=${GDB_RUNS:-5}

die() { echo "dump_vs_gdb: $*" >&2; exit 1; }
[[ -x $vmstack ]] || die "no vmstack at $vmstack (build first, or give its path)"
[[ -x $deep ]] || die "no fixture at $deep"

tmp=$(mktemp -d)
pid=
cleanup() {
  local rc=$?
  if [[ -n $pid ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# the fixture writes "ready" to fd 3 (a fifo) once its spinner is 30 frames deep
mkfifo "$tmp/ready"
"$deep" 3 3>"$tmp/ready" &
pid=$!
read -r -t 10 line <"$tmp/ready" || true
[[ ${line:-} == ready ]] || die "fixture did not get ready"
[[ /proc/$pid/exe -ef $deep ]] || die "pid $pid is not the fixture"

# microseconds in _t; EPOCHREALTIME (bash 5) costs no fork, date +%s%N is the fallback
stamp() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    _t=${EPOCHREALTIME/[.,]/}
  else
    _t=$(($(date +%s%N) / 1000))
  fi
}

# median of the numbers on stdin (microseconds), printed in milliseconds
median_ms() {
  sort -n | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.2f", m / 1000 }'
}

# runs N CMD...: one untimed warm-up, then N timed runs; the times (us) go to stdout
runs() {
  local n=$1 i t0
  shift
  if ! "$@" >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    die "failed: $*"
  fi
  grep -q 'd30' "$tmp/out" || die "no 30-deep stack in the output of: $*"
  for ((i = 0; i < n; i++)); do
    stamp; t0=$_t
    "$@" >/dev/null 2>&1 || die "failed: $*"
    stamp; echo $((_t - t0))
  done
}

v=$(runs "$vruns" "$vmstack" dump -p "$pid" | median_ms)

if ! command -v gdb >/dev/null; then
  printf '{"bench":"dump_vs_gdb","vmstack_ms_p50":%s,"gdb":"missing"}\n' "$v"
  exit 0
fi
# no debuginfod: downloads would measure the network, not the stack walk
g=$(DEBUGINFOD_URLS= runs "$gruns" gdb -p "$pid" -batch -ex 'thread apply all bt' | median_ms)

ratio=$(awk -v v="$v" -v g="$g" 'BEGIN { printf "%.3f", (g > 0 ? v / g : 0) }')
printf '{"bench":"dump_vs_gdb","vmstack_ms_p50":%s,"gdb_ms_p50":%s,"ratio":%s}\n' \
  "$v" "$g" "$ratio"
