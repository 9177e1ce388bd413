#!/bin/bash
# Boots the test VM (build-image.sh) under qemu's software emulation and runs
# CMD in it; prints the serial console; exits with CMD's exit status.
#
# A guest kernel that locks up panics, so the run ends at once with a report
# that says where, instead of running into the timeout. Under emulation on a
# shared host a vCPU can be left unscheduled for tens of seconds, and the
# guest then sees a "soft lockup" that is none (CI62: 45 s, in an ordinary
# mmap); the threshold is raised from 20 s to 120 s (watchdog_thresh=60) so
# that only a lockup that lasts panics.
#
# VM_QEMU_EXTRA: more qemu arguments (a disk for the benchmark of vm-mmap).
#
#   test-containers/vm/run.sh IMAGE_DIR "CMD" [MEM_MB=4096]
set -euo pipefail
IMG=${1:?usage: run.sh IMAGE_DIR CMD [MEM_MB]}
CMD=${2:?}
MEM=${3:-4096}
LOG=$(mktemp /tmp/crl-vm-XXXXXX.log)
trap 'rm -f "$LOG"' EXIT
timeout "${VM_TIMEOUT:-3000}" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m "$MEM" \
  -kernel "$IMG"/vmlinuz-* -initrd "$IMG/initramfs.gz" \
  -append "console=ttyS0 loglevel=5 softlockup_panic=1 watchdog_thresh=60 panic=-1 crl.cmd=\"$CMD\"" \
  ${VM_QEMU_EXTRA:-} -nographic -no-reboot -serial mon:stdio </dev/null | tee "$LOG" | sed -u 's/\r//'
rc=$(sed -n 's/.*crl-vm: exit status \([0-9]*\).*/\1/p' "$LOG" | tail -1)
exit "${rc:-99}"
