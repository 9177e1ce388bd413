#!/bin/bash
# The kernel with process_vm_mmap (linux-patches/build-kernel.sh: built, or
# taken from its cache) in the test VM: the syscall's own tests, and the
# end-to-end tests of memory, trees, pre-copy, containers, restore's faults
# (criu-lite killed, signals mid-restore; dump's do not depend on the
# placement), Debian's servers and migrations between two hosts (a tree,
# and the page server's pages checked to be held in memory, not in files),
# every restore placing pages by --pages=vm-mmap and every migration's
# destination by page-server --pages=vm-mmap. The other two-host tests are
# left out for CI's time (6 minutes here, 4 of them the killed migration;
# GTEST_FILTER='TwoHosts.*' runs them). Fails if the VM's kernel turns out
# not to have the syscall (its tests would only say SKIPPED).
#
#   test-containers/vm/vm-mmap.sh [IMAGE_DIR=build/vm-pvmmap]
#   GTEST_FILTER='*' test-containers/vm/vm-mmap.sh     (the whole suite)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMG=${1:-$ROOT/build/vm-pvmmap}
KERNEL=$("$ROOT/linux-patches/build-kernel.sh")
out=$(mktemp /tmp/crl-vm-mmap-XXXXXX.log)
trap 'rm -f "$out"' EXIT
rc=0
VM_KERNEL=$KERNEL CRL_TEST_PAGES=vm-mmap \
  GTEST_FILTER="${GTEST_FILTER:-ProcessVmMmap.*:VmMmap.*:CheckpointRestore.*:Tree.*:PreCopy.*:Containers.*:Faults.*Restore*:Faults.KilledWhileLettingTheTreeGoLeavesNoneOfIt:Servers.*:RealPrograms.*:TwoHosts.VmMmap*:TwoHosts.TreeWithPipes}" \
  "$ROOT/test-containers/vm/suite.sh" "$IMG" "${SHARDS:-4}" 2 | tee "$out" || rc=$?
if grep -q 'SKIPPED \] ProcessVmMmap.ClonesAnotherProcesssMemoryCopyOnWrite' "$out"; then
  echo "vm-mmap.sh: the VM's kernel has no process_vm_mmap"
  rc=1
fi
exit $rc
