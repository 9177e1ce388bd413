#!/bin/bash
# Runs inside a test VM started by pair.sh: Debian's redis-server migrates
# from VM a to VM b with its client connected across the migration. The
# client runs on a third network endpoint, a network namespace "c" in VM b
# (10.78.5.2, routed through b), and pings redis every 10 ms over one
# connection to the service address 10.78.9.1: on a's loopback first, and
# routed there by b; b's action script makes it b's own at pre-restore. Its
# pings meanwhile are dropped by a's lock (the tree frozen there), then by
# the restore's own lock on b until the connection is made again, never
# answered with a reset. The client must see no error and its key; each
# side's exit status says whether its half went right.
# bash, not busybox's sh, which would run its own ip (no netns) over PATH's.
#
#   guest-redis.sh a|b
set -u
ROLE=${1:?a or b}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CRL=$ROOT/build/criu-lite
S=10.78.9.1
W=/tmp/w
mkdir -p $W
ip link set lo up
ip link set eth0 up
. "$ROOT/test-containers/vm/guest-lib.sh"
say() { echo "crl-vm-$ROLE: $*"; }

if [ "$ROLE" = a ]; then
  ip addr add 10.78.0.1/24 dev eth0
  ip addr add $S/32 dev lo
  ip route add 10.78.5.0/24 via 10.78.0.2
  echo 5000 > /proc/sys/kernel/ns_last_pid
  /usr/bin/redis-server --port 7300 --bind $S --protected-mode no --save '' --appendonly no \
    --pidfile $W/redis.pid --dir /tmp </dev/null >/dev/null 2>&1 &
  # (its files must exist on b too: the other machine has no $W/redis.out)
  i=0
  while [ ! -s $W/redis.pid ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  PID=$(cat $W/redis.pid) || { say "redis did not start"; exit 1; }
  # b says when its client is connected (a file over the page server would
  # do too; a TCP probe is simpler): port 7400 answers once it is.
  i=0
  until echo | nc -w 1 10.78.0.2 7400 >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 600 ] && { say "b's client never connected"; exit 1; }
    sleep 0.2
  done
  say "redis PID $PID, its client connected; migrating"
  migrate_to_b "$PID" --tcp-established
  rc=$?
  [ $rc = 0 ] || { say "migrate failed"; exit 1; }
  if kill -0 "$PID" 2>/dev/null; then say "redis still runs on a"; exit 1; fi
  if nft list tables 2>/dev/null | grep -q criu_lite_; then say "a network lock is left"; exit 1; fi
  say "redis migrated, and gone from a"
  exit 0
fi

ip addr add 10.78.0.2/24 dev eth0
echo 1 > /proc/sys/net/ipv4/ip_forward
ip route add $S/32 via 10.78.0.1
make_endpoint_c
cat >$W/b.sh <<SCRIPT
#!/bin/sh
[ "\$CRTOOLS_SCRIPT_ACTION" = pre-restore ] || exit 0
ip route del $S/32 via 10.78.0.1 && ip addr add $S/32 dev lo
SCRIPT
chmod +x $W/b.sh
ip netns exec c python3 "$ROOT/test-containers/vm/guest-client.py" redis $W $S 7300 >$W/client.out 2>&1 &
i=0
while [ ! -f $W/client.ready ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
[ -f $W/client.ready ] || { say "the client never connected"; cat $W/client.out; exit 1; }
say "the client on c is connected to $S:7300 (redis on a)"
# Tell a (any connection to 7400), then take the migration.
nc -l -p 7400 </dev/null >/dev/null 2>&1 &
"$CRL" page-server --address 10.78.0.2 --port 7000 -D /tmp/img --restore --timeout 300 \
  --allow-unauthenticated-restore --action-script $W/b.sh || {
  say "page server failed"; cat /tmp/img/*/restore.log 2>/dev/null | tail -20; exit 1; }
PID=$(pidof redis-server)
[ -n "$PID" ] || { say "no redis runs on b"; exit 1; }
sleep 2  # the client pings redis on b
touch $W/client.stop
i=0
while [ ! -f $W/client.result ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
say "redis PID $PID runs on b; its client says: $(cat $W/client.result 2>/dev/null || echo nothing)"
grep -q "^PASS.*:1" $W/client.result 2>/dev/null || exit 1
if nft list tables 2>/dev/null | grep -q criu_lite_; then say "a network lock is left"; exit 1; fi
