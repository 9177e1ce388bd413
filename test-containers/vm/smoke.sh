#!/bin/bash
# The VM smoke test CI runs (ctest label "vm"): builds the VM image from
# this build (Debian's 6.1 kernel), boots two VMs joined by a virtual network
# and migrates a small self-checking workload from VM a to VM b, which must
# find it running and intact, and a must no longer have it.
#
# With PAGES=vm-mmap, both VMs boot the kernel with process_vm_mmap
# (linux-patches/build-kernel.sh: built, or taken from its cache) and b's
# page server holds the pages in memory for the restore to take
# (page-server --pages=vm-mmap).
#
#   test-containers/vm/smoke.sh [IMAGE_DIR=build/vm] [MIB=32] [PAGES]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMG=${1:-$ROOT/build/vm}
MIB=${2:-32}
PAGES=${3:-}
KERNEL=
[ "$PAGES" = vm-mmap ] && KERNEL=$("$ROOT/linux-patches/build-kernel.sh")
"$ROOT/test-containers/vm/build-image.sh" "$IMG" $KERNEL >/dev/null
G=$ROOT/test-containers/vm/guest-migrate.sh
"$ROOT/test-containers/vm/pair.sh" "$IMG" "sh $G a $MIB 1" "sh $G b $PAGES"
