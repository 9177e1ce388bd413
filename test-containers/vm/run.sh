#!/bin/bash
# Boots the test VM (build-image.sh) under qemu's software emulation and runs
# CMD in it; prints the serial console; exits with CMD's exit status.
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
  -append "console=ttyS0 loglevel=5 softlockup_panic=1 panic=-1 crl.cmd=\"$CMD\"" \
  -nographic -no-reboot -serial mon:stdio </dev/null | tee "$LOG" | sed -u 's/\r//'
rc=$(sed -n 's/.*crl-vm: exit status \([0-9]*\).*/\1/p' "$LOG" | tail -1)
exit "${rc:-99}"
