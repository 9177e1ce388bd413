#!/bin/bash
# The kernel with process_vm_mmap (linux-patches/build-kernel.sh: built, or taken
# from its cache) in the test VM: the syscall's own tests, and the end-to-end
# tests of memory, trees, pre-copy, containers, faults (criu-lite killed,
# signals mid-restore), Debian's servers and migrations between two hosts
# with every restore placing pages by --pages=vm-mmap (a migration's
# destination: page-server --pages=vm-mmap, its pages held in memory).
# Left out for CI's time: the migration killed at every step (4 minutes
# here; GTEST_FILTER='TwoHosts.*' runs it). Fails if the VM's kernel turns
# out not to have the syscall (its tests would only say SKIPPED).
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
  GTEST_FILTER="${GTEST_FILTER:-ProcessVmMmap.*:VmMmap.*:CheckpointRestore.*:Tree.*:PreCopy.*:Containers.*:Faults.*:Servers.*:RealPrograms.*:TwoHosts.*-TwoHosts.MigrateKilledAnywhereLeavesExactlyOneCopy}" \
  "$ROOT/test-containers/vm/suite.sh" "$IMG" "${SHARDS:-4}" 2 | tee "$out" || rc=$?
if grep -q 'SKIPPED \] ProcessVmMmap.ClonesAnotherProcesssMemoryCopyOnWrite' "$out"; then
  echo "vm-mmap.sh: the VM's kernel has no process_vm_mmap"
  rc=1
fi
exit $rc
