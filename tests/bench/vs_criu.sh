#!/bin/bash
# criu-lite and CRIU side by side on the same workloads in the same run:
# dump and restore wall time, image size and peak RSS, medians over REPS
# runs, with the ratio (criu-lite / CRIU: below 1 is faster), and this
# machine's floors measured in the same run (memory copy bandwidth, writing
# fresh page cache with write() and with vmsplice + splice, first touch of
# fresh anonymous memory). The page cache
# is dropped before each dump, so that each dump writes into a cold cache.
# Without CRIU it prints criu-lite's figures alone.
#
#   tests/bench/vs_criu.sh [--criu BINARY | --criu-src DIR] [--reps N] [--big] [--only NAME]
#                                                        (as root, after scripts/build.sh)
#
# --criu-src DIR builds CRIU from the source tree DIR (a checkout of
# CRIU's repository: the project never carries CRIU's code) the same way
# every time: CRIU's own Makefile, its default flags, `make criu`, which
# needs libprotobuf-c-dev protobuf-c-compiler libnl-3-dev libnl-route-3-dev
# libnet1-dev libcap-dev python3-protobuf libbsd-dev uuid-dev libaio-dev.
# --big adds the 8 GiB process (16 GiB of memory and disk at the peak).
# --only NAME runs one workload: 1g, 8g, tree50, tree500.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build
REPS=5 CRIU="" SRC="" BIG=0 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --criu) CRIU=$2; shift 2 ;;
    --criu-src) SRC=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --big) BIG=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: $0 [--criu BINARY | --criu-src DIR] [--reps N] [--big] [--only NAME]" >&2; exit 2 ;;
  esac
done
if [ -n "$SRC" ]; then
  make -C "$SRC" -j"$(nproc)" criu >/tmp/criu-lite-bench-criu-build.log 2>&1 ||
    { tail -20 /tmp/criu-lite-bench-criu-build.log >&2; echo "building CRIU in $SRC failed" >&2; exit 1; }
  CRIU=$SRC/criu/criu
fi
if [ -n "$CRIU" ] && ! "$CRIU" --version >/dev/null 2>&1; then
  echo "$CRIU does not run as criu" >&2
  exit 1
fi
WORK=$(mktemp -d /tmp/criu-lite-vs-criu-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Runs a command; sets SECS and RSS (peak KiB of the tool and what it waited for).
measure() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f %M -o "$WORK/rss" "$@" >"$WORK/tool.out" 2>"$WORK/tool.err" ||
    { cat "$WORK/tool.err" "$WORK"/img/*.log 2>/dev/null | tail -20 >&2; return 1; }
  t1=$(now)
  SECS=$(echo "$t1 - $t0" | bc -l)
  RSS=$(tail -1 "$WORK/rss")
}

# The workload NAME runs: its arguments.
workload_args() {
  case "$1" in
    1g) echo "hold --big-mib 1024" ;;
    8g) echo "hold --big-mib 8192" ;;
    tree50) echo "forest --procs 50 --threads 4 --big-mib 20" ;;
    tree500) echo "forest --procs 500 --threads 1 --big-mib 2" ;;
  esac
}
start_workload() {
  rm -f "$WORK/ready" "$WORK/result"
  # shellcheck disable=SC2046
  setsid $B/test-containers/workload $(workload_args "$1") --dir "$WORK" </dev/null >"$WORK/out" 2>&1 &
  WPID=$!
  disown
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
  TREE=$(tree_pids "$WPID")
}
# PID and its descendants.
tree_pids() {
  local kids
  echo "$1"
  kids=$(cat /proc/"$1"/task/*/children 2>/dev/null || true)
  for k in $kids; do tree_pids "$k"; done
}
# Until every PID of the dumped tree is free again (its processes reaped):
# a restore needs them, and the wait is neither tool's.
wait_tree_gone() {
  local p
  for p in $TREE; do
    while [ -e /proc/"$p" ]; do sleep 0.02; done
  done
}
# The restored tree checks itself and exits.
check_workload() {
  kill -USR1 "$WPID"
  while [ ! -f "$WORK/result" ]; do sleep 0.05; done
  grep -q PASS "$WORK/result" || { echo "workload failed after $1's restore: $(cat "$WORK/result")" >&2; exit 1; }
  while kill -0 "$WPID" 2>/dev/null; do sleep 0.02; done
}

# One run of TOOL (criu-lite or criu) on workload NAME; appends
# "dump_s restore_s image_mib dump_rss_kib restore_rss_kib" to WORK/TOOL.NAME.
run_tool() {
  local tool=$1 name=$2 bin d dr s
  [ "$tool" = criu-lite ] && bin=$B/criu-lite || bin=$CRIU
  rm -rf "$WORK/img"
  mkdir "$WORK/img"
  start_workload "$name"
  drop_caches
  measure "$bin" dump -t "$WPID" -D "$WORK/img"
  d=$SECS dr=$RSS
  s=$(du -sm "$WORK/img" | cut -f1)
  wait_tree_gone
  measure "$bin" restore -D "$WORK/img" -d
  check_workload "$tool"
  echo "$d $SECS $s $dr $RSS" >>"$WORK/$tool.$name"
}
# Column N's median of WORK/TOOL.NAME.
col() { median $(cut -d' ' -f"$3" "$WORK/$1.$2"); }
figures() { echo "$(col "$1" "$2" 1) $(col "$1" "$2" 2) $(col "$1" "$2" 3) $(col "$1" "$2" 4) $(col "$1" "$2" 5)"; }

floor() { "$B/tests/bench/bench_floors" "$1" "$WORK" "$2"; }
declare -a FC FW FS FT
for _ in $(seq "$REPS"); do
  FC+=("$(floor copy 1024)")
  drop_caches
  FW+=("$(floor write 1024)")
  rm -f "$WORK/floor.dat"
  drop_caches
  FS+=("$(floor splice 1024)")
  rm -f "$WORK/floor.dat"
  FT+=("$(floor touch 1024)")
done

printf '\ncriu-lite %s and %s, medians of %d runs, page cache dropped before each dump (%s)\n\n' \
  "$($B/criu-lite --version 2>/dev/null | head -1)" "${CRIU:+$("$CRIU" --version | head -1)}" "$REPS" "$(uname -r)"
printf 'floors for 1 GiB: copy in memory %.3f s; to fresh page cache: write() %.3f s, vmsplice+splice %.3f s; first touch of fresh memory %.3f s\n\n' \
  "$(median "${FC[@]}")" "$(median "${FW[@]}")" "$(median "${FS[@]}")" "$(median "${FT[@]}")"
printf '%-24s %-10s %9s %9s %9s %12s %12s\n' workload tool dump_s restore_s image_MiB dump_rss_KiB rest_rss_KiB
names="1g tree50 tree500"
[ "$BIG" = 1 ] && names="1g 8g tree50 tree500"
[ -n "$ONLY" ] && names=$ONLY
for name in $names; do
  # The tools take turns, run by run: a machine that slows down meanwhile
  # slows both.
  for _ in $(seq "$REPS"); do
    run_tool criu-lite "$name"
    [ -z "$CRIU" ] || run_tool criu "$name"
  done
  read -r ld lr ls ldr lrr <<<"$(figures criu-lite "$name")"
  printf '%-24s %-10s %9.3f %9.3f %9d %12d %12d\n' "$(workload_args "$name" | cut -d' ' -f1) $name" criu-lite "$ld" "$lr" "$ls" "$ldr" "$lrr"
  [ -z "$CRIU" ] && continue
  read -r cd cr cs cdr crr <<<"$(figures criu "$name")"
  printf '%-24s %-10s %9.3f %9.3f %9d %12d %12d\n' "" CRIU "$cd" "$cr" "$cs" "$cdr" "$crr"
  printf '%-24s %-10s %8.2fx %8.2fx\n' "" ratio "$(echo "$ld / $cd" | bc -l)" "$(echo "$lr / $cr" | bc -l)"
done
printf '\nratio: criu-lite / CRIU (below 1.00x criu-lite is faster); the goal is 0.80x or less\n'
