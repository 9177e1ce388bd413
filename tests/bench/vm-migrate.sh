#!/bin/bash
# The migration benchmark between two VMs (test-containers/vm/pair.sh) on
# Debian's 6.1 kernel: a W MiB workload writing about 0, 1% and 10% of its
# memory per second migrated from VM a to VM b with pre-copy, and with no
# pre-copy (--max-iters 0: freeze, copy everything, restore) as the
# baseline, each in a fresh pair of VMs. Under software emulation absolute
# times mean little: it prints migrate's rows, the summary, and the ratios
# to the baseline measured in the same VMs.
#
#   tests/bench/vm-migrate.sh [W_MIB=256] [IMAGE_DIR=build/vm]   (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
W=${1:-256}
IMG=${2:-$ROOT/build/vm}
test-containers/vm/build-image.sh "$IMG" >/dev/null
G=$ROOT/test-containers/vm/guest-migrate.sh
WORK=$(mktemp -d /tmp/criu-lite-bench-vm-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
MEM=$((W * 4 + 1024))
# Huge pages only where asked for, as on the development machine: under
# "always" (the 6.1 cloud kernel's default) soft-dirty marks a whole 2 MiB
# page written on any write to it, and a workload writing at random pages
# dirties all its memory between two passes (THP=always to see it).
THP="echo ${THP:-madvise} > /sys/kernel/mm/transparent_hugepage/enabled;"
json() { grep -o "\"$2\": [0-9.]*" "$1" | head -1 | awk '{print $2}'; }
split() { grep -o '"frozen_split": {[^}]*}' "$1" | sed 's/"frozen_split": //; s/"//g'; }

run() {  # label pages-per-ms extra-migrate-args
  local label=$1 rate=$2; shift 2
  echo "== $label: $W MiB, $rate pages/ms written ($(echo "$rate * 1000 * 4096 / 1048576" | bc) MiB/s)"
  VM_TIMEOUT=1800 test-containers/vm/pair.sh "$IMG" "$THP sh $G a $W $rate $*" "$THP sh $G b" "$MEM" \
    >"$WORK/$label.log" 2>&1 || { tail -30 "$WORK/$label.log"; echo "$label failed"; exit 1; }
  grep -E '^\[a\] (pass|[0-9]+ |final|migrated)' "$WORK/$label.log" | sed 's/^\[a\] /   /' || true
  grep -E '^\[b\] crl-vm-b: workload says' "$WORK/$label.log" | sed 's/^\[b\] crl-vm-b: /   restored workload on b: /' || true
  # The JSON that VM a printed.
  sed -n '/^\[a\] {/,/^\[a\] }/p' "$WORK/$label.log" | sed 's/^\[a\] //' >"$WORK/$label.json"
}

one_pct=$(( (W * 1048576 / 100) / 4096 / 1000 )); [ $one_pct -lt 1 ] && one_pct=1
ten_pct=$(( (W * 1048576 / 10) / 4096 / 1000 )); [ $ten_pct -lt 1 ] && ten_pct=1
run idle 0
run one-pct $one_pct
run ten-pct $ten_pct
run baseline $one_pct --max-iters 0

echo
printf '%-10s %14s %10s %10s %10s %10s   %s\n' run "bytes sent" "x memory" "total s" "frozen s" "x baseline" "frozen split (s)"
b=$(json "$WORK/baseline.json" frozen_seconds)
for r in idle one-pct ten-pct baseline; do
  f=$WORK/$r.json
  printf '%-10s %14s %10.2f %10.3f %10.3f %10.2f   %s\n' "$r" "$(json "$f" total_bytes)" \
    "$(echo "$(json "$f" total_bytes) / ($W * 1048576)" | bc -l)" "$(json "$f" total_seconds)" \
    "$(json "$f" frozen_seconds)" "$(echo "$(json "$f" frozen_seconds) / $b" | bc -l)" "$(split "$f")"
done
o=$(json "$WORK/one-pct.json" frozen_seconds)
printf '\nin the VMs, at 1%%/s: frozen %.3f s = %.1f%% of the stop-and-copy baseline (%.3f s)\n' "$o" "$(echo "100 * $o / $b" | bc -l)" "$b"
