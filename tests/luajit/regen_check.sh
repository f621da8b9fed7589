#!/bin/sh
# Check that runtimes/luajit/gen/generate.sh reproduces the committed lj_layouts.c.
# Usage: regen_check.sh PREPARE_SH GENERATE_SH COMMITTED_C DIR   (exit 77 when prepare skips)
set -u
prepare=$1 generate=$2 committed=$3 dir=$4
sh "$prepare" "$dir" >/dev/null
rc=$?
[ $rc -eq 77 ] && { echo "SKIP: $prepare could not fetch the LuaJIT sources"; exit 77; }
[ $rc -eq 0 ] || { echo "FAIL: $prepare $dir exited $rc"; exit 1; }
out=$(mktemp)
trap 'rm -f "$out" "$out.a" "$out.b"' EXIT
sh "$generate" "$dir" "$out" || { echo "FAIL: $generate $dir failed"; exit 1; }
if cmp -s "$out" "$committed"; then
  echo "PASS: generate.sh reproduces $committed"
  exit 0
fi
# A newer Debian revision of the same sources only changes the .source lines: note, not fail.
grep -v '^  \.source = ' "$out" > "$out.a"
grep -v '^  \.source = ' "$committed" > "$out.b"
if cmp -s "$out.a" "$out.b"; then
  echo "note: only the .source lines differ (newer Debian revision?); regenerate to update them:"
  diff "$committed" "$out"
  exit 0
fi
echo "FAIL: $committed is not what generate.sh produces from $dir; regenerate:"
echo "  runtimes/luajit/gen/generate.sh $dir"
diff -u "$committed" "$out"
exit 1
