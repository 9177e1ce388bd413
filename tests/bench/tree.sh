#!/bin/bash
# Tree benchmark: PROCS processes x THREADS threads x MIB MiB each are dumped
# and restored; prints dump and restore wall time and the tree's total PSS
# before the dump and after the restore. Medians over REPS runs. The restore
# time includes waiting for the dumped tree's zombies to be reaped (by init:
# their root is gone), which frees the PIDs; the phases show the split.
#
#   tests/bench/tree.sh [PROCS=50] [THREADS=4] [MIB=20] [REPS=3]   (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
PROCS=${1:-50}; THREADS=${2:-4}; MIB=${3:-20}; REPS=${4:-3}
B=build
WORK=$(mktemp -d /tmp/criu-lite-bench-tree-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
tree_pids() { echo "$1"; cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true; }
tree_pss() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^Pss:/ {print $2; exit}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
    sum=$((sum + v))
  done
  echo "$sum"
}
declare -a DUMP RESTORE PSS0 PSS1
for rep in $(seq "$REPS"); do
  rm -rf "$WORK/img" "$WORK/ready" "$WORK/result"
  $B/test-containers/workload forest --procs "$PROCS" --threads "$THREADS" --big-mib "$MIB" --dir "$WORK" </dev/null >"$WORK/out" 2>&1 &
  PID=$!
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
  PSS0+=("$(tree_pss "$PID")")
  sync
  t0=$(now); $B/criu-lite dump -t "$PID" -D "$WORK/img"; t1=$(now)
  wait "$PID" 2>/dev/null || true
  DUMP+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(now); $B/criu-lite restore -D "$WORK/img" -d; t1=$(now)
  RESTORE+=("$(echo "$t1 - $t0" | bc -l)")
  PSS1+=("$(tree_pss "$PID")")
  PHASES=$($B/criu-lite show "$WORK/img/stats-restore.img" | tr -d ' \n' | grep -o '"name":"[a-z-]*","usec":"[0-9]*"' | sed 's/"name":"\([a-z-]*\)","usec":"\([0-9]*\)"/\1 \2us/' | paste -sd' ')
  kill -USR1 "$PID"
  while [ ! -f "$WORK/result" ]; do sleep 0.05; done
  grep -q PASS "$WORK/result" || { echo "workload failed: $(cat "$WORK/result")" >&2; exit 1; }
  while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
done
p0=$(median "${PSS0[@]}"); p1=$(median "${PSS1[@]}")
printf '\ntree of %d processes x %d threads x %d MiB, medians of %d runs (%s)\n\n' "$PROCS" "$THREADS" "$MIB" "$REPS" "$(uname -r)"
printf '%-34s %10.3f s\n' "dump" "$(median "${DUMP[@]}")"
printf '%-34s %10.3f s\n' "restore" "$(median "${RESTORE[@]}")"
printf '%-34s %s\n' "restore phases (last run)" "$PHASES"
printf '%-34s %10d kB\n' "tree PSS before dump" "$p0"
printf '%-34s %10d kB   (%.3fx)\n' "tree PSS after restore" "$p1" "$(echo "$p1 / $p0" | bc -l)"
