#!/bin/bash
# Installs, builds, then checkpoints a running workload, kills it, restores it
# and shows that it carried on where it was with its memory intact.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
CRIU=build/criu-lite
WORK=$(mktemp -d /tmp/criu-lite-demo-XXXXXX)
echo
echo "== starting the counter workload (256 MiB of checksummed memory)"
build/test-containers/workload counter --dir "$WORK" </dev/null >"$WORK/out" 2>&1 &
PID=$!
while [ ! -f "$WORK/ready" ]; do sleep 0.1; done
sleep 2.5
tail -n 2 "$WORK/out"
echo
echo "== criu-lite dump -t $PID -D $WORK/img"
$CRIU dump -t "$PID" -D "$WORK/img" -v
wait "$PID" 2>/dev/null || true
if kill -0 "$PID" 2>/dev/null; then echo "still running?"; exit 1; fi
echo "process $PID is gone; image directory:"
ls -l "$WORK/img"
echo
echo "== criu-lite restore -D $WORK/img -d"
$CRIU restore -D "$WORK/img" -d -v
sleep 2.5
echo "the restored process (PID $PID again) carries on counting:"
tail -n 3 "$WORK/out"
echo
echo "== asking it to verify its memory"
kill -USR1 "$PID"
while [ ! -f "$WORK/result" ]; do sleep 0.1; done
echo "workload says: $(cat "$WORK/result")"
$CRIU show "$WORK/img/stats-dump.img" | grep -E '"(name|usec|pages_written|frozen_usec)"' | tr -d ' ,' | paste -sd' ' | sed 's/^/dump stats: /'
grep -q PASS "$WORK/result"
rm -rf "$WORK"
