#!/usr/bin/env bash
# Wall time of a one-shot `lua-stack -p PID` against gdb's `bt` on the interpreted lua_deep fixture.
# Usage: lua_dump_vs_gdb.sh [LUA_STACK [SCRIPT]]   (runs: LUA_STACK_RUNS=20, GDB_RUNS=5)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
luastack=${1:-$root/build/lua-stack}
script=${2:-$root/bench/lua_deep.lua}
lruns=${LUA_STACK_RUNS:-20}
gruns=${GDB_RUNS:-5}

die() { echo "lua_dump_vs_gdb: $*" >&2; exit 1; }
if ! luajit=$(command -v luajit); then
  echo '{"bench":"lua_dump_vs_gdb","skipped":"no luajit"}'
  exit 0
fi
[[ -x $luastack ]] || die "no lua-stack at $luastack (build first, or give its path)"
[[ -r $script ]] || die "no fixture script at $script"

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

# the fixture writes "ready 0x..." to fd 3 (a fifo) once it spins 30 Lua frames deep
mkfifo "$tmp/ready"
"$luajit" -joff "$script" 3 3>"$tmp/ready" &
pid=$!
read -r -t 10 line <"$tmp/ready" || true
[[ ${line:-} == ready* ]] || die "fixture did not get ready"
[[ /proc/$pid/exe -ef $luajit ]] || die "pid $pid is not the fixture"

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

# runs N PATTERN CMD...: one untimed warm-up whose output must match PATTERN, then N timed
# runs; the times (us) go to stdout
runs() {
  local n=$1 pat=$2 i t0
  shift 2
  if ! "$@" >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    die "failed: $*"
  fi
  grep -q -- "$pat" "$tmp/out" || { cat "$tmp/out" >&2; die "no stack in the output of: $*"; }
  for ((i = 0; i < n; i++)); do
    stamp; t0=$_t
    "$@" >/dev/null 2>&1 || die "failed: $*"
    stamp; echo $((_t - t0))
  done
}

l=$(runs "$lruns" 'd30 ' "$luastack" -p "$pid" | median_ms)

if ! command -v gdb >/dev/null; then
  printf '{"bench":"lua_dump_vs_gdb","lua_stack_ms_p50":%s,"gdb":"missing"}\n' "$l"
  exit 0
fi
# no debuginfod: downloads would measure the network, not the stack walk
g=$(DEBUGINFOD_URLS='' runs "$gruns" '^#1 ' gdb -p "$pid" -batch -ex bt | median_ms)

ratio=$(awk -v l="$l" -v g="$g" 'BEGIN { printf "%.3f", (g > 0 ? l / g : 0) }')
printf '{"bench":"lua_dump_vs_gdb","lua_stack_ms_p50":%s,"gdb_ms_p50":%s,"ratio":%s}\n' \
  "$l" "$g" "$ratio"
