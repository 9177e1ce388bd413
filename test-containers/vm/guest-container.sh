#!/bin/sh
# Runs inside a test VM started by pair.sh: VM a (10.78.0.1) runs a
# container (test-containers/container: PID, mount, UTS, IPC, network and
# cgroup namespaces, a busybox root, its own /proc, /sys, /dev, a /tmp
# tmpfs) whose init is the self-checking `container` workload, and migrates
# it with `criu-lite migrate`; VM b (10.78.0.2) receives it with
# `criu-lite page-server --restore --root`, on a root file system of the
# same files, and asks the restored init to check itself. Each side's exit
# status says whether its half went right.
#
#   guest-container.sh a|b
set -u
ROLE=${1:?a or b}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CRL=$ROOT/build/criu-lite
W=/tmp/w
CT=/tmp/ct/rootfs
# The same root on both machines, as a container image unpacked on each:
# the same files, times kept (restore checks the mapped executable's size
# and modification time), the directories its mounts are made on.
mkdir -p $W $CT/bin $CT/check $CT/proc $CT/sys $CT/dev $CT/tmp
cp -p /bin/busybox $CT/bin/busybox
cp -p "$ROOT/build/test-containers/workload-static" $CT/bin/workload
ip link set lo up
ip link set eth0 up
. "$ROOT/test-containers/vm/guest-lib.sh"
say() { echo "crl-vm-$ROLE: $*"; }

if [ "$ROLE" = a ]; then
  ip addr add 10.78.0.1/24 dev eth0
  "$ROOT/build/test-containers/container" --rootfs $CT --pidfile $W/init-pid --bind $W:/check \
    --stdio /check/out -- /bin/workload container --dir /check </dev/null >$W/launcher.out 2>&1 &
  i=0
  while [ ! -f $W/ready ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  [ -f $W/ready ] || { say "the container never got ready"; cat $W/launcher.out; exit 1; }
  PID=$(cat $W/init-pid)
  say "container init PID $PID on a"
  i=0
  until ping -c 1 -W 1 10.78.0.2 >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 120 ] && { say "b never answered on the network"; exit 1; }
  done
  migrate_to_b "$PID" --stats $W/stats.json --external 'mnt[/check]:results'
  rc=$?
  [ $rc = 0 ] || { say "migrate failed"; exit 1; }
  cat $W/stats.json
  if kill -0 "$PID" 2>/dev/null; then say "PID $PID still runs on a"; exit 1; fi
  say "the container migrated, and is gone from a"
  exit 0
fi

ip addr add 10.78.0.2/24 dev eth0
# /check is a volume the container's runtime gives it on either machine, as
# a shared volume would be: the container's stdout file (fd 0-2, reopened by
# path) is there on b too.
: >$W/out
"$CRL" page-server --address 10.78.0.2 --port 7000 -D /tmp/img --restore --timeout 300 \
  --allow-unauthenticated-restore --root $CT --external "mnt[results]:$W" || {
  say "page server failed"; cat /tmp/img/*/restore.log 2>/dev/null | tail -20; exit 1; }
PID=$(cat /tmp/img/*/restore.pid 2>/dev/null)
[ -n "$PID" ] && kill -0 "$PID" 2>/dev/null || { say "no container init runs on b"; exit 1; }
say "container init PID $PID runs on b ($(grep NSpid /proc/$PID/status)); asking it to check itself"
kill -USR1 "$PID"
i=0
while [ ! -f $W/result ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
say "the container's init says: $(cat $W/result 2>/dev/null || echo nothing)"
grep -q PASS $W/result 2>/dev/null
