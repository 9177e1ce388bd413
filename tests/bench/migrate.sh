#!/bin/bash
# Migration benchmark between the two hosts of test-containers/hosts.sh: a
# W MiB workload dirtying 0, 1% and 10% of its memory per second is migrated
# with pre-copy, and (the baseline) the 1%/s one with no pre-copy at all
# (--max-iters 0: freeze, copy everything, restore). Prints migrate's own
# rows per pass and a summary with the frozen time's split. The destination
# restores lazily (its default); the same 1%/s run and baseline are then
# repeated with --pages=read on the destination, to show what that buys,
# and over TLS (certificates made for the run), to show what TLS costs.
#
# Then a server with 100 established TCP connections against the same server
# with none (CONNS_ONLY=1 runs these rows alone).
#
#   tests/bench/migrate.sh [W_MIB=1024] [DEST_DIR=/dev/shm]   (as root, after scripts/build.sh)
#
# The destination receives into DEST_DIR: tmpfs by default, as one does for
# migrations, so that the restore does not compete with the writeback of the
# gigabyte just received (on this machine's ext4 that doubles the restore).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:-1024}
DEST=${2:-/dev/shm}
B=$PWD/build
H=$PWD/test-containers/hosts.sh
WORK=$(mktemp -d /tmp/criu-lite-bench-migrate-XXXXXX)
DESTW=$(mktemp -d "$DEST/criu-lite-bench-migrate-XXXXXX")
trap '$H down; rm -rf "$WORK" "$DESTW"' EXIT
$H up
PORT=7200
tests/e2e/make-certs.sh "$WORK/certs" >/dev/null
C=$WORK/certs
SERVER_TLS=(--tls --tls-cacert "$C/ca.pem" --tls-cert "$C/server.pem" --tls-key "$C/server.key")
CLIENT_TLS=(--tls --tls-cacert "$C/ca.pem" --tls-cert "$C/client.pem" --tls-key "$C/client.key")
json() { grep -o "\"$2\": [0-9.]*" "$1" | head -1 | awk '{print $2}'; }
split() { grep -o '"frozen_split": {[^}]*}' "$1" | sed 's/"frozen_split": //; s/"//g'; }

run() {  # label pages-per-ms destination-placement plain|tls extra-migrate-args
  local label=$1 rate=$2 placement=$3 link=$4; shift 4
  local server_args=(--allow-unauthenticated-restore) client_args=()
  if [ "$link" = tls ]; then server_args=("${SERVER_TLS[@]}"); client_args=("${CLIENT_TLS[@]}"); fi
  local d=$WORK/$label
  mkdir -p "$d"
  PORT=$((PORT + 1))
  $H exec a "$B/test-containers/workload" dirtier --big-mib "$W" --rate "$rate" --dir "$d" </dev/null >"$d/out" 2>&1 &
  disown
  while [ ! -f "$d/ready" ]; do sleep 0.1; done
  local pid; pid=$(cat "$d/ready")
  $H exec b "$B/criu-lite" page-server --address 10.77.0.2 --port $PORT -D "$DESTW/$label" --restore --pages "$placement" --status-file "$d/server.ready" "${server_args[@]}" &
  while [ ! -f "$d/server.ready" ]; do sleep 0.05; done
  echo "== $label: $W MiB, $rate pages/ms written ($(echo "$rate * 1000 * 4096 / 1048576" | bc) MiB/s), destination --pages=$placement, $link"
  $H exec a "$B/criu-lite" migrate -t "$pid" --to 10.77.0.2:$PORT --stats "$d/stats.json" "${client_args[@]}" "$@"
  $H exec b kill -USR1 "$pid"
  while [ ! -f "$d/result" ]; do sleep 0.1; done
  echo "   restored workload: $(cat "$d/result")"
  rm -rf "${DESTW:?}/$label"
}

# A server with N established TCP connections (its clients in the same
# process: 2N sockets), migrated with --tcp-established: what the
# connections add to the frozen time, and the network lock's own share.
run_conns() {  # label connections
  local label=$1 n=$2 d=$WORK/$1
  mkdir -p "$d"
  PORT=$((PORT + 1))
  $H exec a "$B/test-containers/workload" conns --procs "$n" --dir "$d" </dev/null >"$d/out" 2>&1 &
  disown
  while [ ! -f "$d/ready" ]; do sleep 0.1; done
  local pid; pid=$(cat "$d/ready")
  $H exec b "$B/criu-lite" page-server --address 10.77.0.2 --port $PORT -D "$DESTW/$label" --restore --status-file "$d/server.ready" --allow-unauthenticated-restore &
  while [ ! -f "$d/server.ready" ]; do sleep 0.05; done
  echo "== $label: a server with $n established connections, --tcp-established"
  $H exec a "$B/criu-lite" migrate -t "$pid" --to 10.77.0.2:$PORT --stats "$d/stats.json" --tcp-established
  $H exec b kill -USR1 "$pid"
  while [ ! -f "$d/result" ]; do sleep 0.1; done
  echo "   restored workload: $(cat "$d/result")"
  rm -rf "${DESTW:?}/$label"
}
conns_summary() {
  local f0 f1 l1
  f0=$(json "$WORK/conns-0/stats.json" frozen_seconds); f1=$(json "$WORK/conns-100/stats.json" frozen_seconds)
  l1=$(json "$WORK/conns-100/stats.json" net_lock_seconds)
  printf '100 established connections: frozen %.3f s vs %.3f s with none (+%.3f s); the network lock %.3f s of it (%.2f ms per connection end)\n' \
    "$f1" "$f0" "$(echo "$f1 - $f0" | bc -l)" "$l1" "$(echo "$l1 * 1000 / 200" | bc -l)"
}
if [ "${CONNS_ONLY:-}" = 1 ]; then  # the connection rows alone
  for n in 0 100; do run_conns conns-$n $n; done
  conns_summary
  exit 0
fi

one_pct=$(( (W * 1048576 / 100) / 4096 / 1000 )); [ $one_pct -lt 1 ] && one_pct=1
ten_pct=$(( (W * 1048576 / 10) / 4096 / 1000 )); [ $ten_pct -lt 1 ] && ten_pct=1
run idle 0 lazy plain
run one-pct $one_pct lazy plain
run ten-pct $ten_pct lazy plain
run baseline $one_pct lazy plain --max-iters 0
# What lazy restore buys: the same 1%/s migration, pages placed before the
# tree runs (and its stop-and-copy baseline).
run one-pct-eager $one_pct read plain
run baseline-eager $one_pct read plain --max-iters 0
# What TLS costs: the 1%/s migration and its baseline again, over TLS.
run one-pct-tls $one_pct lazy tls
run baseline-tls $one_pct lazy tls --max-iters 0
for n in 0 100; do run_conns conns-$n $n; done

echo
printf '%-14s %14s %10s %10s %10s   %s\n' run "bytes sent" "x memory" "total s" "frozen s" "frozen split (s)"
for r in idle one-pct ten-pct baseline one-pct-eager baseline-eager one-pct-tls baseline-tls conns-0 conns-100; do
  f=$WORK/$r/stats.json
  printf '%-14s %14s %10.2f %10.3f %10.3f   %s\n' "$r" "$(json "$f" total_bytes)" \
    "$(echo "$(json "$f" total_bytes) / ($W * 1048576)" | bc -l)" "$(json "$f" total_seconds)" \
    "$(json "$f" frozen_seconds)" "$(split "$f")"
done
b=$(json "$WORK/baseline/stats.json" frozen_seconds); o=$(json "$WORK/one-pct/stats.json" frozen_seconds)
printf '\nat 1%%/s: frozen %.3f s = %.1f%% of the stop-and-copy baseline (%.3f s); target <= 30%%\n' "$o" "$(echo "100 * $o / $b" | bc -l)" "$b"
b=$(json "$WORK/baseline-eager/stats.json" frozen_seconds); o=$(json "$WORK/one-pct-eager/stats.json" frozen_seconds)
printf 'with --pages=read on the destination: frozen %.3f s = %.1f%% of its baseline (%.3f s)\n' "$o" "$(echo "100 * $o / $b" | bc -l)" "$b"
for r in one-pct baseline; do
  p=$WORK/$r/stats.json t=$WORK/$r-tls/stats.json
  printf 'TLS, %s: total %.3f s vs %.3f s plain (x%.2f), frozen %.3f s vs %.3f s (x%.2f)\n' "$r" \
    "$(json "$t" total_seconds)" "$(json "$p" total_seconds)" \
    "$(echo "$(json "$t" total_seconds) / $(json "$p" total_seconds)" | bc -l)" \
    "$(json "$t" frozen_seconds)" "$(json "$p" frozen_seconds)" \
    "$(echo "$(json "$t" frozen_seconds) / $(json "$p" frozen_seconds)" | bc -l)"
done
conns_summary
