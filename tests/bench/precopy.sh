#!/bin/bash
# Pre-copy iteration benchmark. A workload of W MiB dirtying D MiB/s goes
# through PASSES pre-dump passes and a final dump; one row per pass: pages
# scanned, pages written to the image, bytes, scan time (finding written
# pages, task frozen), copy time (task running), time the tree was stopped,
# and the dirty rate observed. Then the same workload is dumped in full, the
# baseline the final dump is compared with. Finally the cost of finding
# written pages with PAGEMAP_SCAN against reading all of /proc/PID/pagemap
# at 1 and 8 GiB with 1% written.
#
#   tests/bench/precopy.sh [W_MIB=1024] [D_MIB_PER_S=10] [PASSES=5]   (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-1024}; D=${2:-10}; PASSES=${3:-5}
B=build
WORK=$(mktemp -d /tmp/criu-lite-bench-precopy-XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
# The dirtier writes RATE pages per millisecond (4 KiB pages): RATE = D / 3.9.
RATE=$(echo "r = $D * 1048576 / 4096 / 1000; if (r < 1) 1 else r" | bc -l | cut -d. -f1)
[ "$RATE" -ge 1 ] 2>/dev/null || RATE=1
now() { date +%s.%N; }
field() { $B/criu-lite show "$1" | tr -d ' \n' | grep -o "\"$2\":\"[0-9]*\"" | head -1 | grep -o '[0-9]*' || echo 0; }
phase() { $B/criu-lite show "$1" | tr -d ' \n' | grep -o "\"name\":\"$2\",\"usec\":\"[0-9]*\"" | grep -o '[0-9]*"$' | tr -d '"' || echo 0; }
start() {
  rm -f "$WORK/ready" "$WORK/result"
  $B/test-containers/workload dirtier --big-mib "$W" --rate "$RATE" --dir "$WORK" </dev/null >"$WORK/out" 2>&1 &
  PID=$!
  disown "$PID"  # no "Killed" line when the dump ends it; bash still reaps it
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
}
row() {  # dir label seconds_since_last
  local s=$1/stats-dump.img written rate="-"
  written=$(field "$s" pages_written)
  [ "$2" != 1 ] && rate=$(printf '%.1f' "$(echo "$written * 4096 / 1048576 / $3" | bc -l)")
  printf '%-6s %10s %10s %10.1f %9.1f %9.1f %9.1f %11s\n' "$2" "$(field "$s" pages_scanned)" "$written" \
    "$(echo "$(field "$s" bytes_written) / 1048576" | bc -l)" "$(echo "$(phase "$s" scan) / 1000" | bc -l)" \
    "$(echo "$(phase "$s" memory) / 1000" | bc -l)" "$(echo "$(field "$s" frozen_usec) / 1000" | bc -l)" "$rate"
}

printf '\npre-copy of a %d MiB workload dirtying about %d MiB/s (%d pages/ms), %s\n\n' "$W" "$D" "$RATE" "$(uname -r)"
printf '%-6s %10s %10s %10s %9s %9s %9s %11s\n' pass scanned written MiB "scan ms" "copy ms" "stop ms" "dirty MiB/s"
start
prev=""; last=$(now)
for i in $(seq "$PASSES"); do
  args=(); [ -n "$prev" ] && args=(--prev-images-dir "../$prev")
  t=$(now); $B/criu-lite pre-dump -t "$PID" -D "$WORK/p$i" "${args[@]}"
  row "$WORK/p$i" "$i" "$(echo "$t - $last" | bc -l)"
  last=$t; prev=p$i
  sleep 1
done
t0=$(now); $B/criu-lite dump -t "$PID" -D "$WORK/final" --prev-images-dir "../$prev" --track-mem; t1=$(now)
row "$WORK/final" final "$(echo "$t0 - $last" | bc -l)"
final=$(echo "$t1 - $t0" | bc -l)
final_stop=$(echo "$(field "$WORK/final/stats-dump.img" frozen_usec) / 1000000" | bc -l)
$B/criu-lite restore -D "$WORK/final" -d
kill -USR1 "$PID"; while [ ! -f "$WORK/result" ]; do sleep 0.05; done
echo "restored workload: $(cat "$WORK/result")"
while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
rm -rf "$WORK"/p* "$WORK/final"

start
sleep 1
t0=$(now); $B/criu-lite dump -t "$PID" -D "$WORK/full"; t1=$(now)
full=$(echo "$t1 - $t0" | bc -l)
full_stop=$(echo "$(field "$WORK/full/stats-dump.img" frozen_usec) / 1000000" | bc -l)
printf '\nfinal dump after pre-copy: %.3f s (tree stopped %.3f s)\n' "$final" "$final_stop"
printf 'full dump, no pre-copy:    %.3f s (tree stopped %.3f s)\n' "$full" "$full_stop"
printf 'final / full:              %.1f%% of the time, %.1f%% of the stop\n\n' "$(echo "100 * $final / $full" | bc -l)" "$(echo "100 * $final_stop / $full_stop" | bc -l)"
rm -rf "$WORK/full"
echo "finding written pages, 1% of the pages written:"
$B/tests/bench/bench_scan_cost 1
$B/tests/bench/bench_scan_cost 8
