#!/bin/bash
# A process with tens of thousands of mappings (every other page of one
# region read-only): dump and restore times and criu-lite's peak RSS, which
# the README promises stays bounded whatever the target's size.
#
#   tests/bench/many_vmas.sh [THOUSANDS=50]     (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${1:-50}
B=$PWD/build
W=$(mktemp -d /tmp/criu-lite-bench-vmas-XXXXXX)
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$W"' EXIT
"$B/test-containers/workload" vmas --procs "$K" --dir "$W" </dev/null >"$W/out" 2>&1 &
pid=$!
while [ ! -f "$W/ready" ]; do sleep 0.1; done
echo "PID $pid: $(wc -l < /proc/$pid/maps) mappings"
/usr/bin/time -f "dump: %e s, criu-lite peak RSS %M KiB" "$B/criu-lite" dump -t "$pid" -D "$W/img"
wait $pid 2>/dev/null || true
/usr/bin/time -f "restore: %e s, criu-lite peak RSS %M KiB" "$B/criu-lite" restore -D "$W/img" -d
kill -USR1 "$pid"
for _ in $(seq 100); do [ -f "$W/result" ] && break; sleep 0.1; done
echo "restored workload: $(cat "$W/result" 2>/dev/null || echo 'no answer')"
