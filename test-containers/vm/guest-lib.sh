# Sourced by the guest scripts (sh or bash; CRL and W set): what VM a of a
# pair does alike in each.

# migrate_to_b PID ARGS...: `criu-lite migrate` of PID to VM b's page
# server (10.78.0.2:7000), retried while that does not listen yet (migrate
# connects before it touches the tree: harmless); prints what migrate said;
# migrate's status.
migrate_to_b() {
  _pid=$1
  shift
  _i=0
  while :; do
    "$CRL" migrate -t "$_pid" --to 10.78.0.2:7000 --timeout 300 "$@" 2>$W/migrate.err
    _rc=$?
    [ $_rc = 0 ] && break
    grep -q "connecting to the page server" $W/migrate.err || break
    _i=$((_i + 1)); [ $_i -gt 120 ] && break
    sleep 1
  done
  cat $W/migrate.err
  return $_rc
}

# make_endpoint_c: on VM b, a third network endpoint for a client: the
# network namespace c, 10.78.5.2, routed through b (10.78.5.1); VM a
# routes 10.78.5.0/24 to b.
make_endpoint_c() {
  ip netns add c
  ip link add c1 type veth peer name c0
  ip link set c0 netns c
  ip addr add 10.78.5.1/24 dev c1
  ip link set c1 up
  ip -n c addr add 10.78.5.2/24 dev c0
  ip -n c link set lo up
  ip -n c link set c0 up
  ip -n c route add default via 10.78.5.1
}
