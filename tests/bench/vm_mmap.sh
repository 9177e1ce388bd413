#!/bin/bash
# The benchmark process_vm_mmap's reviewers asked for: restores with
# --pages=vm-mmap against read, writev and lazy, in the VM on the kernel of
# linux-patches/ (built or taken from its cache), the images on a virtio
# disk (ext4) so that their page cache is real and can be dropped. For each
# size and placement, medians of REPS runs: wall time of the restore, CPU
# time of criu-lite (user + system; for lazy, not the daemon's), and the
# peak of the machine's memory in use above what it was before the restore
# (page cache, criu-lite, the task: the point of zero-copy is that pages
# are never held twice). Under software emulation absolute times mean
# little; ratios in the same VM do.
#
# Then a migration's destination side (--migrate-mib, default 1024; 0: none):
# a tree migrated in one stop-and-copy pass between two hosts in the VM to
# `page-server --restore --pages=...`: the destination's restore time, CPU
# time of its page server (with its restore and page holders), the peak of
# memory in use above what it was before (the received pages: files and
# their cache, or page holders, and the restored task), and the freeze.
#
#   tests/bench/vm_mmap.sh [--mib "1024 4096"] [--reps 3] [--migrate-mib 1024]
#   (as root, after a build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIZES="1024 4096" REPS=3 MODES="vm-mmap read writev lazy" MIGRATE=1024
while [ $# -gt 0 ]; do
  case "$1" in
    --mib) SIZES=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --migrate-mib) MIGRATE=$2; shift 2 ;;
    *) echo "usage: vm_mmap.sh [--mib \"MIB...\"] [--reps N] [--migrate-mib MIB]" >&2; exit 2 ;;
  esac
done
KERNEL=$("$ROOT/linux-patches/build-kernel.sh")
IMG=$ROOT/build/vm-pvmmap
"$ROOT/test-containers/vm/build-image.sh" "$IMG" "$KERNEL" >/dev/null
max=$MIGRATE
for m in $SIZES; do [ "$m" -gt "$max" ] && max=$m; done
DISK=$(mktemp /tmp/crl-bench-disk-XXXXXX.img)
OUT=$(mktemp /tmp/crl-bench-vm-mmap-XXXXXX.log)
trap 'rm -f "$DISK" "$OUT"' EXIT
truncate -s $((max * 2 + 1024))M "$DISK"
mkfs.ext4 -q -F "$DISK"
# Room for the workload, its restored copy, criu-lite's, and the page cache.
MEM=$((max * 3 + 2048))
VM_TIMEOUT=${VM_TIMEOUT:-7200} VM_QEMU_EXTRA="-drive file=$DISK,if=virtio,format=raw" \
  "$ROOT/test-containers/vm/run.sh" "$IMG" \
  "bash $ROOT/test-containers/vm/guest-bench-vm-mmap.sh '$SIZES' $REPS '$MODES' $MIGRATE" "$MEM" \
  >"$OUT" 2>&1 || { tail -30 "$OUT"; exit 1; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
printf '\n--pages=... on %s, medians of %d runs (qemu TCG, 2 vCPUs, %d MiB)\n\n' \
  "$(grep -o 'crl-vm: kernel [^,]*' "$OUT" | head -1 | sed 's/crl-vm: kernel //')" "$REPS" "$MEM"
printf '%-8s %-8s %9s %9s %12s %10s %10s\n' MiB pages wall_s cpu_s peak_MiB wall/vm cpu/vm
for m in $SIZES; do
  runs=$(tr -d '\r' <"$OUT" | awk -v m="$m" '$1 == "run" && $2 == m')
  get() { echo "$runs" | awk -v p="$1" -v c="$2" '$3 == p {print $c}' | median; }
  vw=$(get vm-mmap 4) vc=$(get vm-mmap 5)
  for mode in $MODES; do
    w=$(get "$mode" 4) c=$(get "$mode" 5) p=$(get "$mode" 6)
    printf '%-8s %-8s %9.2f %9.2f %12d %10.2f %10.2f\n' "$m" "$mode" "$w" "$c" "$p" \
      "$(awk -v a="$w" -v b="$vw" 'BEGIN {print a / b}')" "$(awk -v a="$c" -v b="$vc" 'BEGIN {print (b > 0) ? a / b : 0}')"
  done
done
[ "$MIGRATE" -gt 0 ] || exit 0
printf '\nA migration'"'"'s destination: %d MiB in one stop-and-copy pass to page-server --restore --pages=...\n\n' "$MIGRATE"
printf '%-8s %-8s %10s %9s %12s %9s %11s %10s\n' MiB pages restore_s cpu_s peak_MiB frozen_s restore/vm peak/vm
runs=$(tr -d '\r' <"$OUT" | awk '$1 == "mig"')
get() { echo "$runs" | awk -v p="$1" -v c="$2" '$3 == p {print $c}' | median; }
vr=$(get vm-mmap 4) vp=$(get vm-mmap 6)
for mode in $MODES; do
  r=$(get "$mode" 4) c=$(get "$mode" 5) p=$(get "$mode" 6) f=$(get "$mode" 7)
  printf '%-8s %-8s %10.2f %9.2f %12d %9.2f %11.2f %10.2f\n' "$MIGRATE" "$mode" "$r" "$c" "$p" "$f" \
    "$(awk -v a="$r" -v b="$vr" 'BEGIN {print a / b}')" "$(awk -v a="$p" -v b="$vp" 'BEGIN {print (b > 0) ? a / b : 0}')"
done
