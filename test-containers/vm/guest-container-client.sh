#!/bin/bash
# Runs inside a test VM started by pair.sh: a container on a bridge
# migrates from VM a to VM b with a client connected to its server across
# the migration. The container (test-containers/container, a busybox root)
# runs busybox's nc serving cat on each connection, at 10.98.0.2 behind a
# veth whose other end, crl-ct0, is in the bridge crl-ctbr (10.98.0.1) on
# a. The client runs on a third network endpoint, a network namespace "c"
# in VM b (10.78.5.2, routed through b), and sends a line every 10 ms,
# expecting it back. b routes 10.98.0.2 to a until its action script takes
# that route away at pre-restore; the restore puts the veth's other end in
# b's own crl-ctbr (--external veth[eth0]:crl-ct0@crl-ctbr), as a runtime's
# network plugin would have. The client must see no error and every line
# back; each side's exit status says whether its half went right.
# bash, not busybox's sh, which would run its own ip (no netns) over PATH's.
#
#   guest-container-client.sh a|b
set -u
ROLE=${1:?a or b}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CRL=$ROOT/build/criu-lite
S=10.98.0.2
W=/tmp/w
CT=/tmp/ct/rootfs
# The same root on both machines, as a container image unpacked on each.
mkdir -p $W $CT/bin $CT/proc $CT/sys $CT/dev $CT/tmp
cp -p /bin/busybox $CT/bin/busybox
ln -sf busybox $CT/bin/cat
ip link set lo up
ip link set eth0 up
# The container's bridge, on either machine.
ip link add crl-ctbr type bridge
ip addr add 10.98.0.1/24 dev crl-ctbr
ip link set crl-ctbr up
echo 1 > /proc/sys/net/ipv4/ip_forward
. "$ROOT/test-containers/vm/guest-lib.sh"
say() { echo "crl-vm-$ROLE: $*"; }

if [ "$ROLE" = a ]; then
  ip addr add 10.78.0.1/24 dev eth0
  ip route add 10.78.5.0/24 via 10.78.0.2
  "$ROOT/build/test-containers/container" --rootfs $CT --pidfile $W/init-pid --stdio /dev/null \
    --veth "crl-ct0@crl-ctbr:$S/24,10.98.0.1" -- /bin/busybox nc -ll -p 7000 -e /bin/cat \
    </dev/null >$W/launcher.out 2>&1 &
  # b says when its client is connected: port 7400 answers once it is.
  i=0
  until echo | nc -w 1 10.78.0.2 7400 >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 600 ] && { say "b's client never connected"; cat $W/launcher.out; exit 1; }
    sleep 0.2
  done
  PID=$(cat $W/init-pid)
  say "container init PID $PID, its client connected; migrating"
  migrate_to_b "$PID" --tcp-established
  rc=$?
  [ $rc = 0 ] || { say "migrate failed"; exit 1; }
  if kill -0 "$PID" 2>/dev/null; then say "the container still runs on a"; exit 1; fi
  if ip link show crl-ct0 >/dev/null 2>&1; then say "crl-ct0 is left on a"; exit 1; fi
  say "the container migrated, and is gone from a"
  exit 0
fi

ip addr add 10.78.0.2/24 dev eth0
ip route add $S/32 via 10.78.0.1
make_endpoint_c
cat >$W/b.sh <<SCRIPT
#!/bin/sh
[ "\$CRTOOLS_SCRIPT_ACTION" = pre-restore ] || exit 0
ip route del $S/32 via 10.78.0.1
SCRIPT
chmod +x $W/b.sh
ip netns exec c python3 "$ROOT/test-containers/vm/guest-client.py" echo $W $S 7000 >$W/client.out 2>&1 &
i=0
while [ ! -f $W/client.ready ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
[ -f $W/client.ready ] || { say "the client never connected"; cat $W/client.out; exit 1; }
say "the client on c is connected to $S:7000 (the container on a)"
nc -l -p 7400 </dev/null >/dev/null 2>&1 &
"$CRL" page-server --address 10.78.0.2 --port 7000 -D /tmp/img --restore --timeout 300 \
  --allow-unauthenticated-restore --action-script $W/b.sh --root $CT \
  --external 'veth[eth0]:crl-ct0@crl-ctbr' || {
  say "page server failed"; cat /tmp/img/*/restore.log 2>/dev/null | tail -20; exit 1; }
PID=$(cat /tmp/img/*/restore.pid 2>/dev/null)
[ -n "$PID" ] && kill -0 "$PID" 2>/dev/null || { say "no container init runs on b"; exit 1; }
sleep 2  # the client's lines go to the container on b
touch $W/client.stop
i=0
while [ ! -f $W/client.result ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
say "the container's init is PID $PID on b ($(ip -o link show crl-ct0 | grep -o 'master [^ ]*')); its client says: $(cat $W/client.result 2>/dev/null || echo nothing)"
grep -q "^PASS" $W/client.result 2>/dev/null || exit 1
if nft list tables 2>/dev/null | grep -q criu_lite_; then say "a network lock is left"; exit 1; fi
