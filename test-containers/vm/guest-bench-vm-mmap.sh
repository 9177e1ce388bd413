#!/bin/bash
# Inside the VM (tests/bench/vm_mmap.sh): restores of MIB MiB with each page
# placement, the images on the disk /dev/vda (ext4), the page cache dropped
# before each restore. Prints one line per run: MiB, placement, wall s, CPU s
# of criu-lite (user + system), peak of the machine's memory in use above
# what it was before the restore (MiB: page cache, criu-lite, the task).
#
# Then a migration's destination side: MIGRATE_MIB MiB migrated (one
# stop-and-copy pass) between two hosts in the VM (test-containers/hosts.sh)
# to `page-server --restore --pages=PLACEMENT`. One line per run: MiB,
# placement, the destination's restore s, CPU s of the page server with its
# restore and page holders, peak of memory in use above what it was before
# the migration (the source's copy is there all along), the freeze s.
#
#   guest-bench-vm-mmap.sh "MIB..." REPS "PLACEMENT..." [MIGRATE_MIB]
set -euo pipefail
B=/work/main/build
SIZES=$1 REPS=$2 MODES=$3 MIGRATE_MIB=${4:-0}
mkdir -p /mnt && mount -t ext4 /dev/vda /mnt
W=/mnt/w
mkdir -p "$W"
used() {
  local k v t=0 f=0
  while read -r k v _; do
    case $k in MemTotal:) t=$v ;; MemFree:) f=$v; break ;; esac
  done </proc/meminfo
  echo $((t - f))
}
for mib in $SIZES; do
  for _ in $(seq "$REPS"); do
    for mode in $MODES; do
      rm -rf "$W/img" "$W/ready" "$W/result"
      mkdir -p "$W/img"
      setsid $B/test-containers/workload hold --big-mib "$mib" --dir "$W" </dev/null >"$W/out" 2>&1 &
      pid=$!
      while [ ! -f "$W/ready" ]; do sleep 0.05; done
      $B/criu-lite dump -t "$pid" -D "$W/img"
      while [ -e /proc/$pid ]; do sleep 0.02; done
      sync
      echo 3 >/proc/sys/vm/drop_caches
      base=$(used)
      rm -f "$W/stop"
      (peak=0
       while [ ! -f "$W/stop" ]; do
         u=$(used)
         [ "$u" -gt "$peak" ] && peak=$u && echo "$peak" >"$W/peak"
         sleep 0.02  # not a vCPU of its own: the restore has two
       done) &
      sampler=$!
      TIMEFORMAT='%R %U %S'
      t=$({ time $B/criu-lite restore -D "$W/img" -d --pages "$mode" >/dev/null 2>"$W/err"; } 2>&1) ||
        { echo "restore --pages=$mode failed: $(cat "$W/err")"; exit 1; }
      # The restored task reads all its memory in its check (lazy pages
      # arrive then at the latest): the peak is taken until it has.
      kill -USR1 "$pid"
      while [ ! -f "$W/result" ]; do sleep 0.05; done
      touch "$W/stop"
      wait "$sampler"
      grep -q PASS "$W/result" || { echo "$mode: $(cat "$W/result")"; exit 1; }
      while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
      read -r wall user sys <<<"$t"
      echo "run $mib $mode $wall $(echo "$user $sys" | awk '{printf "%.2f", $1 + $2}') $(( ($(cat "$W/peak") - base) / 1024 ))"
    done
  done
done

[ "$MIGRATE_MIB" -gt 0 ] || exit 0
H=/work/main/test-containers/hosts.sh
"$H" up
trap '"$H" down' EXIT
sampler() {
  rm -f "$W/stop"
  (peak=0
   while [ ! -f "$W/stop" ]; do
     u=$(used)
     [ "$u" -gt "$peak" ] && peak=$u && echo "$peak" >"$W/peak"
     sleep 0.02
   done) &
  SAMPLER=$!
}
for _ in $(seq "$REPS"); do
  for mode in $MODES; do
    rm -rf "$W/dest" "$W/ready" "$W/result" "$W/srv.ready"
    "$H" exec a setsid $B/test-containers/workload hold --big-mib "$MIGRATE_MIB" --dir "$W" \
      </dev/null >"$W/out" 2>&1 &
    while [ ! -f "$W/ready" ]; do sleep 0.05; done
    pid=$(cat "$W/ready")
    sync
    echo 3 >/proc/sys/vm/drop_caches
    base=$(used)
    sampler
    "$H" exec b bash -c "TIMEFORMAT='%U %S'; time $B/criu-lite page-server --address 10.77.0.2 \
      --port 7000 -D $W/dest --restore --pages $mode --allow-unauthenticated-restore \
      --timeout 300 --status-file $W/srv.ready 2>$W/srv.err" 2>"$W/srv.time" &
    srv=$!
    while [ ! -f "$W/srv.ready" ]; do sleep 0.05; done
    "$H" exec a $B/criu-lite migrate -t "$pid" --to 10.77.0.2:7000 --max-iters 0 \
      --stats "$W/stats.json" 2>"$W/migrate.err" ||
      { echo "migrate to --pages=$mode failed: $(cat "$W/migrate.err" "$W/srv.err")"; exit 1; }
    wait "$srv" || { echo "page server --pages=$mode: $(cat "$W/srv.err")"; exit 1; }
    json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$W/stats.json" | head -1; }
    pid=$(json destination_pid)
    "$H" exec b kill -USR1 "$pid" ||
      { echo "no PID $pid on b: $(cat "$W/migrate.err" "$W/srv.err" "$W/stats.json")"; "$H" exec b ps; exit 1; }
    while [ ! -f "$W/result" ]; do sleep 0.05; done
    touch "$W/stop"
    wait "$SAMPLER"
    grep -q PASS "$W/result" || { echo "migrate $mode: $(cat "$W/result")"; exit 1; }
    "$H" exec b kill -9 "$pid" 2>/dev/null || true  # it exits after its check
    echo "mig $MIGRATE_MIB $mode $(json destination_restore_seconds) $(awk '{printf "%.2f", $1 + $2}' "$W/srv.time") $(( ($(cat "$W/peak") - base) / 1024 )) $(json frozen_seconds)"
  done
done
