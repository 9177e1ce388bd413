#!/bin/bash
# Checkpoint/restore benchmark: a process holding MIB MiB of random data is
# dumped and restored, for each page placement strategy, raw and zstd. The
# same run measures this machine's floors (write the data to a file; fill
# fresh memory from a file), so that the figures read as ratios that hold on
# a noisy machine. Reports medians over REPS runs.
#
#   tests/bench/checkpoint_restore.sh [MIB=1024] [REPS=3]      (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-1024}
REPS=${2:-3}
B=build
CRIU=$B/criu-lite
WORK=$(mktemp -d /tmp/criu-lite-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Runs a command, prints "seconds peak_rss_kib".
measure() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f %M -o "$WORK/rss" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; return 1; }
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc -l) $(cat "$WORK/rss")"
}
start_workload() {
  rm -f "$WORK/ready" "$WORK/result"
  $B/test-containers/workload hold --big-mib "$MIB" --dir "$WORK" </dev/null >"$WORK/out" 2>&1 &
  WPID=$!
  while [ ! -f "$WORK/ready" ]; do sleep 0.05; done
}
check_workload() {
  kill -USR1 "$WPID"
  while [ ! -f "$WORK/result" ]; do sleep 0.05; done
  grep -q PASS "$WORK/result" || { echo "workload failed: $(cat "$WORK/result")" >&2; exit 1; }
  while kill -0 "$WPID" 2>/dev/null; do sleep 0.01; done
}

declare -A T R
for rep in $(seq "$REPS"); do
  for enc in raw zstd; do
    args=(); [ $enc = zstd ] && args=(--compress)
    # The floors are taken right before each dump, after the same clean-up,
    # so that both meet the same page cache and writeback state.
    rm -rf "$WORK/img"; sync
    T[floor_write]+="$($B/tests/bench/bench_floors write "$WORK" "$MIB") "
    T[floor_read]+="$($B/tests/bench/bench_floors read "$WORK" "$MIB") "
    start_workload
    sync
    read -r t r < <(measure $CRIU dump -t "$WPID" -D "$WORK/img" "${args[@]}")
    wait "$WPID" 2>/dev/null || true
    T[dump_$enc]+="$t "; R[dump_$enc]+="$r "
    size=$(du -sk "$WORK/img" | cut -f1)
    T[size_$enc]="$size"
    for pages in read writev; do
      read -r t r < <(measure $CRIU restore -D "$WORK/img" -d --pages=$pages)
      T[restore_${enc}_$pages]+="$t "; R[restore_${enc}_$pages]+="$r "
      check_workload
    done
  done
done

fw=$(median ${T[floor_write]}); fr=$(median ${T[floor_read]})
gb=$(echo "$MIB / 1024" | bc -l)
printf '\ncheckpoint/restore of %d MiB of random data, medians of %d runs (%s)\n\n' "$MIB" "$REPS" "$(uname -r)"
printf '%-28s %9s %9s %11s %10s\n' "" "seconds" "GB/s" "vs floor" "peak RSS"
printf '%-28s %9.3f %9.2f %11s %10s\n' "floor: write to file" "$fw" "$(echo "$gb / $fw" | bc -l)" "1.00x" "-"
printf '%-28s %9.3f %9.2f %11s %10s\n' "floor: fill memory from file" "$fr" "$(echo "$gb / $fr" | bc -l)" "1.00x" "-"
for enc in raw zstd; do
  t=$(median ${T[dump_$enc]}); r=$(median ${R[dump_$enc]})
  printf '%-28s %9.3f %9.2f %10.2fx %7d KiB   image %d MiB\n' "dump ($enc)" "$t" "$(echo "$gb / $t" | bc -l)" "$(echo "$t / $fw" | bc -l)" "$r" "$((${T[size_$enc]} / 1024))"
  for pages in read writev; do
    t=$(median ${T[restore_${enc}_$pages]}); r=$(median ${R[restore_${enc}_$pages]})
    printf '%-28s %9.3f %9.2f %10.2fx %7d KiB\n' "restore ($enc, --pages=$pages)" "$t" "$(echo "$gb / $t" | bc -l)" "$(echo "$t / $fr" | bc -l)" "$r"
  done
done
printf '\ntargets: dump <= 1.3x its floor; restore --pages=read <= 1.3x its floor; peak RSS < 64 MiB\n'
