#!/bin/bash
# Two "hosts" on one machine for migration tests: network namespaces joined
# by a veth pair, each with its own PID namespace (and /proc), so that a tree
# migrated from A to B gets its PIDs back on B while A still has them. A
# third network endpoint, c (a network namespace only), is a client of both:
# it is 10.77.8.1 (on its loopback), reached from a over 10.77.1.0/24 and
# from b over 10.77.2.0/24, so that a service address can move from a to b
# by changing c's route to it.
#
#   hosts.sh up              create hosts a (10.77.0.1), b (10.77.0.2) and c
#   hosts.sh exec a|b|c CMD... run CMD on a host (in its network, PID and mount namespaces)
#   hosts.sh down            remove them (kills whatever runs on them)
set -euo pipefail
STATE=/run/criu-lite-hosts
NET=10.77.0
REAPER=${REAPER:-$(cd "$(dirname "$0")/.." && pwd)/build/test-containers/workload}

init_pid() { cat "$STATE/$1.init" 2>/dev/null; }

up() {
  down 2>/dev/null || true
  mkdir -p "$STATE"
  # c first: the mount namespaces of a and b then have its /run/netns entry,
  # so that their scripts can change its routes (ip netns exec crl-c).
  ip netns add crl-c
  ip -n crl-c link set lo up
  ip -n crl-c addr add 10.77.8.1/32 dev lo
  ip netns add crl-a
  ip netns add crl-b
  ip link add crl-va type veth peer name crl-vb
  ip link set crl-va netns crl-a
  ip link set crl-vb netns crl-b
  ip -n crl-a addr add $NET.1/24 dev crl-va
  ip -n crl-b addr add $NET.2/24 dev crl-vb
  local i=1
  for h in a b; do
    ip link add crl-c$h type veth peer name crl-${h}c
    ip link set crl-c$h netns crl-c
    ip link set crl-${h}c netns crl-$h
    ip -n crl-c addr add 10.77.$i.2/24 dev crl-c$h
    ip -n crl-$h addr add 10.77.$i.1/24 dev crl-${h}c
    ip -n crl-c link set crl-c$h up
    ip -n crl-$h link set crl-${h}c up
    ip -n crl-$h route add 10.77.8.1/32 via 10.77.$i.2
    i=$((i + 1))
  done
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
  [ "$h" = c ] && exec ip netns exec crl-c "$@"
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
  ip netns del crl-c 2>/dev/null || true
  # A pair left in this namespace by an up that failed half-way.
  for l in crl-va crl-ca crl-cb; do ip link del $l 2>/dev/null || true; done
  rm -rf "$STATE"
}

case "${1:-}" in
  up) up ;;
  exec) shift; run "$@" ;;
  down) down ;;
  *) echo "usage: hosts.sh up | exec a|b|c CMD... | down" >&2; exit 2 ;;
esac
