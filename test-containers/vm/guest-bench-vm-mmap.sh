#!/bin/bash
# Inside the VM (tests/bench/vm_mmap.sh): restores of MIB MiB with each page
# placement, the images on the disk /dev/vda (ext4), the page cache dropped
# before each restore. Prints one line per run: MiB, placement, wall s, CPU s
# of criu-lite (user + system), peak of the machine's memory in use above
# what it was before the restore (MiB: page cache, criu-lite, the task).
#
#   guest-bench-vm-mmap.sh "MIB..." REPS "PLACEMENT..."
set -euo pipefail
B=/work/main/build
SIZES=$1 REPS=$2 MODES=$3
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
