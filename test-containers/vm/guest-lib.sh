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
