#!/bin/sh
# Runs inside a test VM started by pair.sh: VM a (10.78.0.1) runs a
# self-checking workload and migrates it with `criu-lite migrate`; VM b
# (10.78.0.2) receives it with `criu-lite page-server --restore`, then asks
# the restored workload to check itself. Each side's exit status says
# whether its half went right: a, that migrate succeeded and the workload is
# gone from a; b, that the workload runs on b and checks PASS.
#
#   guest-migrate.sh a [MIB=64] [RATE=1 page/ms] [EXTRA migrate args...]
#   guest-migrate.sh b [PAGES]      (the page server's --pages; vm-mmap: b checks
#                                    the tasks took their memory from page holders)
set -u
ROLE=${1:?a or b}
ARG2=${2:-}
MIB=${2:-64}
RATE=${3:-1}
shift 3 2>/dev/null || shift $#
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CRL=$ROOT/build/criu-lite
W=/tmp/w
mkdir -p $W
ip link set lo up
ip link set eth0 up
. "$ROOT/test-containers/vm/guest-lib.sh"
say() { echo "crl-vm-$ROLE: $*"; }

if [ "$ROLE" = a ]; then
  ip addr add 10.78.0.1/24 dev eth0
  # PIDs far from what b's own processes take: the tree keeps its PIDs on b.
  echo 5000 > /proc/sys/kernel/ns_last_pid
  "$ROOT/build/test-containers/workload" dirtier --big-mib "$MIB" --rate "$RATE" --dir $W \
    </dev/null >/dev/null 2>&1 &
  i=0
  while [ ! -f $W/ready ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  PID=$(cat $W/ready) || { say "the workload never got ready"; exit 1; }
  say "workload PID $PID ($MIB MiB, $RATE pages/ms written)"
  i=0
  until ping -c 1 -W 1 10.78.0.2 >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 120 ] && { say "b never answered on the network"; exit 1; }
  done
  migrate_to_b "$PID" --stats $W/stats.json "$@"
  rc=$?
  [ $rc = 0 ] || { say "migrate failed"; exit 1; }
  cat $W/stats.json
  if kill -0 "$PID" 2>/dev/null; then say "PID $PID still runs on a"; exit 1; fi
  say "PID $PID migrated, and gone from a"
  exit 0
fi

ip addr add 10.78.0.2/24 dev eth0
PAGES=$ARG2
# A private link between the two VMs: no TLS (the TwoHosts tests cover it).
"$CRL" page-server --address 10.78.0.2 --port 7000 -D /tmp/img --restore --timeout 300 \
  --allow-unauthenticated-restore ${PAGES:+--pages=$PAGES} || {
  say "page server failed"; cat /tmp/img/*/restore.log 2>/dev/null | tail -20; exit 1; }
if [ "$PAGES" = vm-mmap ]; then
  took=$(grep -h "from page holder" /tmp/img/*/restore.log)
  [ -n "$took" ] || { say "no task took its memory from a page holder"; exit 1; }
  say "$took"
  for f in /tmp/img/*/pages-*.img; do stat -c '%s %b' "$f"; done |
    awk '{ s += $1; b += $2 * 512 } END { printf "crl-vm-b: page files: %d KiB, %d KiB of it on disk\n", s / 1024, b / 1024 }' 
fi
PID=$(pidof workload)
[ -n "$PID" ] || { say "no workload runs on b"; exit 1; }
say "workload PID $PID runs on b; asking it to check itself"
kill -USR1 "$PID"
i=0
while [ ! -f $W/result ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
say "workload says: $(cat $W/result 2>/dev/null || echo nothing)"
grep -q PASS $W/result 2>/dev/null
