#!/bin/sh
# Check a committed runtimes/perl/pl_layouts.c entry against a real Perl build: the entry must be
# what gen/pl_layout_gen.c prints when compiled against that build's headers (all but .source),
# and the build's binary must export what the entry says (PL_interp_size, PL_version, the
# globals of a non-threaded perl).
#
# Usage: layout_check.sh system GEN_C LAYOUTS_C
#          the installed perl (Debian's threaded 5.36): its CORE headers (libperl-dev) and the
#          binary $^X
#        layout_check.sh nothread GEN_C LAYOUTS_C PREPARE_SH DIR
#          the non-threaded build of fixtures/perl/prepare.sh DIR: its configured tree and
#          DIR/nothread/bin/perl
# Exit 0 pass, 1 fail, 77 skip (no perl, no libperl-dev headers, prepare.sh skipped).
set -u

mode=$1 gen_c=$2 layouts_c=$3
CC=${CC:-cc}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

for t in "$CC" readelf od awk; do
  command -v "$t" >/dev/null 2>&1 || skip "$t not found"
done

# -- The binary -------------------------------------------------------------

# sym FILE NAME: "VALUE SIZE" of a .dynsym symbol (hex value without 0x), or nothing.
sym() {
  readelf -W --dyn-syms "$1" | awk -v s="$2" '$8 == s { print $2, $3; exit }'
}

# read_uint FILE NAME BYTES: the unsigned little-endian value of the symbol's first BYTES bytes,
# read from the file at the offset its PT_LOAD segment maps it from.
read_uint() {
  sv=$(sym "$1" "$2" | cut -d' ' -f1)
  [ -n "$sv" ] || return 1
  v=$((0x$sv))
  off=
  # shellcheck disable=SC2034 # pa, ms, rest: unused columns.
  while read -r typ o va pa fs ms rest; do
    [ "$typ" = LOAD ] || continue
    if [ "$v" -ge $((va)) ] && [ "$v" -lt $((va + fs)) ]; then
      off=$((v - va + o)); break
    fi
  done <<EOF
$(readelf -W -l "$1")
EOF
  [ -n "$off" ] || return 1
  od -An -tu"$3" -j "$off" -N "$3" "$1" | tr -d ' '
}

# -- The committed entry ----------------------------------------------------

# entry NAME: the initializer of that layout in LAYOUTS_C, without its .source line.
entry() {
  awk -v n="$1" '
    /^\{$/ { buf = ""; inb = 1 }
    inb { buf = buf $0 "\n" }
    /^\},$/ && inb { inb = 0; if (index(buf, "  .name = \"" n "\",\n")) printf "%s", buf }
  ' "$layouts_c" | grep -v '^  \.source = '
}

# field NAME: a top-level numeric field of the committed entry (version, interp_size, ...).
field() {
  sed -n "s/.* \.$1 = \([0-9]*\),.*/\1/p" "$TMP/want" | head -1
}

# check_headers NAME CFLAGS...: gen_c compiled with CFLAGS prints the committed entry NAME.
check_headers() {
  name=$1; shift
  entry "$name" > "$TMP/want"
  [ -s "$TMP/want" ] || { fail "$layouts_c has no entry $name"; return; }
  if ! "$CC" -std=gnu11 -O2 -w "$@" -o "$TMP/gen" "$gen_c" 2> "$TMP/cc.err"; then
    cat "$TMP/cc.err"
    fail "$gen_c does not compile with $*"
    return
  fi
  if ! "$TMP/gen" "$name" "-" > "$TMP/got.src"; then
    fail "pl_layout_gen failed"
    return
  fi
  grep -v '^  \.source = ' "$TMP/got.src" > "$TMP/got"
  if cmp -s "$TMP/want" "$TMP/got"; then
    pass "$name in $(basename "$layouts_c") is what the build's headers give"
  else
    fail "$name in $(basename "$layouts_c") differs from the build's headers:"
    diff -u "$TMP/want" "$TMP/got"
  fi
}

# check_binary PERL: the binary's exported data agree with the committed entry in $TMP/want.
check_binary() {
  bin=$(readlink -f "$1")
  want_ver=$(field version)
  got_ver=$(read_uint "$bin" PL_version 1)
  if [ "$got_ver" = "$want_ver" ]; then pass "$bin PL_version = $got_ver"
  else fail "$bin PL_version = '$got_ver', the entry says $want_ver"; fi

  want_size=$(field interp_size)
  got_size=$(read_uint "$bin" PL_interp_size 2)
  if [ "$want_size" = 0 ]; then
    # Without MULTIPLICITY perl.h declares no PL_interp_size; the walker reads globals instead.
    if [ -n "$(sym "$bin" PL_interp_size)" ]; then
      fail "$bin exports PL_interp_size ($got_size) but the entry says it has none"
    else
      pass "$bin exports no PL_interp_size (interp_size 0)"
    fi
    for g in PL_curcop PL_curstackinfo PL_curstash PL_defstash PL_compiling PL_main_cv \
             PL_sv_count PL_sv_root PL_sv_arenaroot PL_strtab; do
      [ -n "$(sym "$bin" "$g")" ] || fail "$bin does not export $g"
    done
    pass "$bin exports the interpreter globals"
  elif [ "$got_size" = "$want_size" ]; then
    pass "$bin PL_interp_size = $got_size"
  else
    fail "$bin PL_interp_size = '$got_size', the entry says $want_size"
  fi
}

case $mode in
system)
  command -v perl >/dev/null 2>&1 || skip "no perl"
  core=$(perl -MConfig -e 'print "$Config{archlibexp}/CORE"')
  [ -f "$core/perl.h" ] || skip "no $core/perl.h (apt-get install libperl-dev)"
  name=$(perl -MConfig -e 'printf "perl-5.%d-%s", $Config{PERL_VERSION},
                           $Config{usemultiplicity} ? "thread" : "nothread"')
  # shellcheck disable=SC2046 # ccopts is a list of flags.
  check_headers "$name" $(perl -MExtUtils::Embed -e ccopts)
  check_binary "$(perl -e 'print $^X')"
  ;;
nothread)
  [ $# -eq 5 ] || { echo "usage: $0 nothread GEN_C LAYOUTS_C PREPARE_SH DIR" >&2; exit 64; }
  sh "$4" "$5" > "$TMP/prepare.out"
  rc=$?
  [ $rc -eq 77 ] && skip "$4 could not fetch or build the Perl sources"
  [ $rc -eq 0 ] || { echo "FAIL: $4 $5 exited $rc"; exit 1; }
  bin=$(tail -1 "$TMP/prepare.out")
  info=$(dirname "$(dirname "$bin")")/BUILD_INFO
  name=$(sed -n 's/^name=//p' "$info")
  tree=$(sed -n 's/^tree=//p' "$info")
  ccflags=$(sed -n "s/^ccflags='\(.*\)'\$/\1/p" "$tree/config.sh")
  # shellcheck disable=SC2086 # ccflags is a list of flags.
  check_headers "$name" -I"$tree" $ccflags
  check_binary "$bin"
  got=$("$bin" -MList::Util=first -e 'print first { $_ > 1 } 1..3')
  if [ "$got" = 2 ]; then pass "$bin runs List::Util"
  else fail "$bin -MList::Util=first printed '$got'"; fi
  ;;
*)
  echo "usage: $0 system|nothread GEN_C LAYOUTS_C [PREPARE_SH DIR]" >&2
  exit 64
  ;;
esac

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "PASS"
