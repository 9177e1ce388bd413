#!/bin/bash
# Many open files: a process holding N fds (each its own open description of
# /dev/null, so every pair must be told apart) is dumped with -R; prints how
# long the tree was frozen, for each N. Medians over REPS runs.
#
#   tests/bench/many_fds.sh [REPS=3] [N...=1000 4000 10000]   (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}; shift || true
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1000 4000 10000)
WORK=$(mktemp -d /tmp/criu-lite-bench-fds-XXXXXX)
holder=
trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$WORK"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '%8s %12s\n' fds "frozen s"
for n in "${COUNTS[@]}"; do
  bash -c "ulimit -n $((n + 100)); for ((i = 10; i < $((n + 10)); i++)); do eval \"exec \$i</dev/null\"; done; echo ready >$WORK/ready; exec sleep 1000" </dev/null >/dev/null 2>&1 &
  holder=$!
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
  times=()
  for ((r = 0; r < REPS; r++)); do
    rm -rf "$WORK/img"
    build/criu-lite dump -t "$holder" -D "$WORK/img" -R
    us=$(build/criu-lite show "$WORK/img/stats-dump.img" | sed -n 's/.*"frozen_usec": "\([0-9]*\)".*/\1/p')
    times+=("$(echo "scale=3; $us / 1000000" | bc)")
  done
  printf '%8d %12s\n' "$n" "$(median "${times[@]}")"
  kill "$holder"; wait "$holder" 2>/dev/null || true; holder=; rm -f "$WORK/ready"
done
