#!/bin/bash
# Boots two test VMs (build-image.sh) under qemu's software emulation, joined
# by a virtual network (qemu's socket netdev: VM a listens on a local TCP
# port, VM b connects; inside, eth0 of each is on the same Ethernet), runs
# CMD_A in VM a and CMD_B in VM b, prints both serial consoles (each line
# prefixed with its VM), and exits 0 only if both commands exit 0. Whatever
# happens, no qemu is left running.
#
#   test-containers/vm/pair.sh IMAGE_DIR "CMD_A" "CMD_B" [MEM_MB=2048]
#
# VM_TIMEOUT (seconds, default 900) bounds the whole run.
set -euo pipefail
IMG=${1:?usage: pair.sh IMAGE_DIR CMD_A CMD_B [MEM_MB]}
CMD_A=${2:?}
CMD_B=${3:?}
MEM=${4:-2048}
WORK=$(mktemp -d /tmp/crl-vm-pair-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A free local port for the link between the two VMs.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo $((20000 + RANDOM % 20000)))

boot() {  # name mac netdev-args cmd
  local name=$1 mac=$2 net=$3 cmd=$4
  timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 1 -m "$MEM" \
    -kernel "$IMG"/vmlinuz-* -initrd "$IMG/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1 crl.cmd=\"$cmd\"" \
    -netdev "socket,id=n0,$net" -device "virtio-net-pci,netdev=n0,mac=$mac" \
    -display none -no-reboot -serial "file:$WORK/$name.log" -monitor none </dev/null \
    >"$WORK/$name.qemu" 2>&1 &
  PIDS+=($!)
}

boot a 52:54:00:00:78:01 "listen=127.0.0.1:$PORT" "$CMD_A"
# b connects to a's listening socket: wait until it is there.
for _ in $(seq 100); do
  grep -q ":$(printf '%04X' "$PORT") " /proc/net/tcp 2>/dev/null && break
  sleep 0.1
done
boot b 52:54:00:00:78:02 "connect=127.0.0.1:$PORT" "$CMD_B"

# Show both consoles as they come.
tail -q -s 0.1 -n +1 -F "$WORK/a.log" 2>/dev/null | sed -u 's/\r//; s/^/[a] /' &
TA=$!
tail -q -s 0.1 -n +1 -F "$WORK/b.log" 2>/dev/null | sed -u 's/\r//; s/^/[b] /' &
TB=$!
PIDS+=("$TA" "$TB")
rc_a=0 rc_b=0
wait "${PIDS[0]}" || rc_a=$?
wait "${PIDS[1]}" || rc_b=$?
sleep 1
kill "$TA" "$TB" 2>/dev/null || true
status() {  # name qemu-exit
  local s
  s=$(sed -n 's/.*crl-vm: exit status \([0-9]*\).*/\1/p' "$WORK/$1.log" | tail -1)
  if [ -z "$s" ]; then
    echo "pair.sh: VM $1 did not finish its command (qemu exit $2; timeout ${VM_TIMEOUT:-900} s?)" >&2
    cat "$WORK/$1.qemu" >&2
    echo 99
  else
    echo "$s"
  fi
}
sa=$(status a "$rc_a")
sb=$(status b "$rc_b")
echo "pair.sh: VM a exit status $sa, VM b exit status $sb"
[ "$sa" = 0 ] && [ "$sb" = 0 ]
