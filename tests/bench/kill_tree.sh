#!/bin/bash
# A big tree's `dump -R` killed (SIGKILL) early, while criu-lite collects
# it process by process, mostly inside remote-syscall windows: after each
# kill, how many processes are still traced, stopped or have every signal
# blocked, whether the kill landed inside a window (guarded or not, from
# the -vv log), and whether the whole tree then passes its own check.
#
#   tests/bench/kill_tree.sh [PROCS=200] [DELAYS="0.1 0.2 0.3 0.45"] [REPS=2]   (as root)
set -euo pipefail
cd "$(dirname "$0")/../.."
PROCS=${1:-200}; DELAYS=${2:-"0.1 0.2 0.3 0.45"}; REPS=${3:-2}
B=build
WORK=$(mktemp -d /tmp/criu-lite-bench-killtree-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
tree_pids() {
  local p=$1
  echo "$p"
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}
printf '%-6s %-4s %-9s %-8s %-8s %-16s %s\n' delay rep processes traced stopped "all blocked" "open window / check"
for delay in $DELAYS; do
  for rep in $(seq "$REPS"); do
    rm -rf "$WORK"/*
    $B/test-containers/workload forest --procs "$PROCS" --threads 1 --big-mib 1 --dir "$WORK" </dev/null >"$WORK/out" 2>&1 &
    PID=$!
    while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
    $B/criu-lite dump -t "$PID" -D "$WORK/img" -R -v -v -o "$WORK/log" &
    CRL=$!
    sleep "$delay"
    kill -KILL "$CRL" 2>/dev/null || true
    wait "$CRL" 2>/dev/null || true
    sleep 0.2
    n=0 traced=0 stopped=0 blocked=0
    for p in $(tree_pids "$PID"); do
      n=$((n + 1))
      s=/proc/$p/status
      [ "$(awk '/^TracerPid:/ {print $2}' "$s")" = 0 ] || traced=$((traced + 1))
      grep -q '^State:.*T' "$s" && stopped=$((stopped + 1))
      for t in /proc/"$p"/task/*/status; do
        if grep -q '^SigBlk:.*fffffffffffffff' "$t"; then blocked=$((blocked + 1)); break; fi
      done
    done
    # The last window opened and not closed, if any.
    window=$(grep -oE '(un)?guarded remote-syscall window opens in thread [0-9]+|remote-syscall window closed in thread [0-9]+' "$WORK/log" |
      tail -1 | grep -oE '^(un)?guarded' || echo none)
    kill -USR1 "$PID"
    for _ in $(seq 600); do [ -f "$WORK/result" ] && break; sleep 0.05; done
    result=$(head -c 200 "$WORK/result" 2>/dev/null || echo "no result")
    wait "$PID" 2>/dev/null || true
    printf '%-6s %-4s %-9s %-8s %-8s %-16s %s / %s\n' "$delay" "$rep" "$n" "$traced" "$stopped" "$blocked" "$window" "$result"
  done
done
