#!/bin/bash
# Two "hosts" on one machine for migration tests: network namespaces joined
# by a veth pair, each with its own PID namespace (and /proc), so that a tree
# migrated from A to B gets its PIDs back on B while A still has them.
#
#   hosts.sh up              create hosts a (10.77.0.1) and b (10.77.0.2)
#   hosts.sh exec a|b CMD... run CMD on a host (in its network, PID and mount namespaces)
#   hosts.sh down            remove both (kills whatever runs on them)
set -euo pipefail
STATE=/run/criu-lite-hosts
NET=10.77.0
REAPER=${REAPER:-$(cd "$(dirname "$0")/.." && pwd)/build/test-containers/workload}

init_pid() { cat "$STATE/$1.init" 2>/dev/null; }

up() {
  down 2>/dev/null || true
  mkdir -p "$STATE"
  ip netns add crl-a
  ip netns add crl-b
  ip link add crl-va type veth peer name crl-vb
  ip link set crl-va netns crl-a
  ip link set crl-vb netns crl-b
  ip -n crl-a addr add $NET.1/24 dev crl-va
  ip -n crl-b addr add $NET.2/24 dev crl-vb
  for h in a b; do
    ip -n crl-$h link set lo up
    ip -n crl-$h link set crl-v$h up
    # The PID namespace's init: outlives everything run there and reaps it.
    ip netns exec crl-$h unshare --pid --fork --mount-proc "$REAPER" reaper &
    local outer=$!
    local child=""
    for _ in $(seq 100); do
      child=$(pgrep -P "$(pgrep -P $outer | head -1 || echo 0)" workload 2>/dev/null || true)
      [ -z "$child" ] && child=$(pgrep -P $outer workload 2>/dev/null || true)
      [ -n "$child" ] && break
      sleep 0.05
    done
    [ -n "$child" ] || { echo "hosts.sh: host $h did not start" >&2; exit 1; }
    echo "$child" > "$STATE/$h.init"
    echo "$outer" > "$STATE/$h.outer"
  done
  # Host a hands out high PIDs, host b low ones: the tools b runs never sit
  # on a PID that a tree migrating from a needs.
  nsenter -t "$(init_pid a)" -p -m -n -- sh -c 'echo 20000 > /proc/sys/kernel/ns_last_pid'
}

run() {
  local h=$1; shift
  local p; p=$(init_pid "$h") || { echo "hosts.sh: host $h is not up" >&2; exit 1; }
  exec nsenter -t "$p" -p -m -n -- "$@"
}

down() {
  for h in a b; do
    [ -f "$STATE/$h.outer" ] && kill -9 "$(cat "$STATE/$h.outer")" 2>/dev/null || true
    [ -f "$STATE/$h.init" ] && kill -9 "$(cat "$STATE/$h.init")" 2>/dev/null || true
  done
  ip netns del crl-a 2>/dev/null || true
  ip netns del crl-b 2>/dev/null || true
  # A pair left in this namespace by an up that failed half-way.
  ip link del crl-va 2>/dev/null || true
  rm -rf "$STATE"
}

case "${1:-}" in
  up) up ;;
  exec) shift; run "$@" ;;
  down) down ;;
  *) echo "usage: hosts.sh up | exec a|b CMD... | down" >&2; exit 2 ;;
esac
