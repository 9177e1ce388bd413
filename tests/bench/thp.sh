#!/bin/bash
# Is a restored process as fast as the original? The `thp` workload holds
# MIB MiB in transparent huge pages (collapsed, as khugepaged or a system
# with THP "always" leaves them; the mapping is not MADV_HUGEPAGE, so a
# fault there gives small pages) and times a memory-bound loop (dependent
# random reads, each likely a TLB miss with small pages) before the dump and
# after the restore. Restores alternate between the default (huge pages made
# again, MADV_COLLAPSE) and --no-huge-pages (small pages: what restores did
# before). Prints medians over REPS runs of each: the loop's time before and
# after, the restored/original ratio, how much was in huge pages after, and
# the restore's own time.
#
#   tests/bench/thp.sh [--mib MIB] [--reps N]        (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build
MIB=1024 REPS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --mib) MIB=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    *) echo "usage: $0 [--mib MIB] [--reps N]" >&2; exit 2 ;;
  esac
done
WORK=$(mktemp -d /tmp/criu-lite-thp-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# One run: restore with OPT ("" or --no-huge-pages); appends
# "loop_before loop_after huge_after_mib restore_s" to WORK/runs.OPT.
run() {
  local opt=$1 t0 t1
  rm -rf "$WORK/w"
  mkdir "$WORK/w"
  setsid $B/test-containers/workload thp --big-mib "$MIB" --what time --dir "$WORK/w" \
    </dev/null >"$WORK/w/out" 2>&1 &
  local pid=$!
  disown
  while [ ! -f "$WORK/w/ready" ]; do
    if [ -f "$WORK/w/skip" ]; then echo "SKIPPED: $(cat "$WORK/w/skip")"; exit 0; fi
    sleep 0.05
  done
  $B/criu-lite dump -t "$pid" -D "$WORK/w/img" 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  while [ -e /proc/"$pid" ]; do sleep 0.02; done
  t0=$(now)
  # shellcheck disable=SC2086
  $B/criu-lite restore -D "$WORK/w/img" -d $opt 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  t1=$(now)
  kill -USR1 "$pid"
  while [ ! -f "$WORK/w/result" ]; do sleep 0.05; done
  grep -q PASS "$WORK/w/result" || { echo "the workload failed: $(cat "$WORK/w/result")" >&2; exit 1; }
  echo "$(cat "$WORK/w/loop-before") $(cat "$WORK/w/loop-after") $(($(cat "$WORK/w/huge-after") / 1024)) $(echo "$t1 - $t0" | bc -l)" \
    >>"$WORK/runs${opt:-.huge}"
}
col() { median $(cut -d' ' -f"$2" "$WORK/runs$1"); }

for _ in $(seq "$REPS"); do
  run ""
  run --no-huge-pages
done

printf '\n%d MiB in huge pages, medians of %d runs each (%s; THP %s)\n\n' "$MIB" "$REPS" "$(uname -r)" \
  "$(grep -o '\[[a-z]*\]' /sys/kernel/mm/transparent_hugepage/enabled)"
printf '%-34s %10s %10s %8s %12s %10s\n' restore loop_before loop_after ratio huge_after_MiB restore_s
for o in .huge --no-huge-pages; do
  b=$(col "$o" 1) a=$(col "$o" 2)
  printf '%-34s %10.3f %10.3f %7.2fx %12s %10.3f\n' "$([ "$o" = .huge ] && echo "default (huge pages again)" || echo "--no-huge-pages")" \
    "$b" "$a" "$(echo "$a / $b" | bc -l)" "$(col "$o" 3)" "$(col "$o" 4)"
done
printf '\nloop: seconds of the best of five passes of 2M dependent random reads; ratio: after / before\n'
