#!/bin/bash
# Runs the whole end-to-end suite inside VMs on Debian's 6.1 kernel (soft-
# dirty, no PAGEMAP_SCAN, no PROCMAP_QUERY, no [vvar_vclock]): every fallback
# path for real. Under software emulation the suite takes far longer than on
# the host, so it is split into gtest shards, each in a VM of its own, JOBS
# at a time. Prints each shard's results, then every failed and skipped test
# (a skip must name what the kernel lacks); exits 0 only if none failed.
#
# With VM_KERNEL=BZIMAGE the VMs boot that kernel instead (vm-mmap.sh: the
# kernel with process_vm_mmap); GTEST_FILTER and CRL_TEST_PAGES (the page
# placement of every restore that names none) are passed to the suite.
#
#   test-containers/vm/suite.sh [IMAGE_DIR=build/vm] [SHARDS=8] [JOBS=2]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMG=${1:-$ROOT/build/vm}
SHARDS=${2:-8}
JOBS=${3:-2}
"$ROOT/test-containers/vm/build-image.sh" "$IMG" ${VM_KERNEL:+"$VM_KERNEL"} >/dev/null
PASS_ENV=""
[ -n "${GTEST_FILTER:-}" ] && PASS_ENV+=" GTEST_FILTER='$GTEST_FILTER'"
[ -n "${CRL_TEST_PAGES:-}" ] && PASS_ENV+=" CRL_TEST_PAGES=$CRL_TEST_PAGES"
OUT=$(mktemp -d /tmp/crl-vm-suite-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
start=$(date +%s)
run_shard() {
  local i=$1 rc=0
  VM_TIMEOUT=${VM_TIMEOUT:-1200} "$ROOT/test-containers/vm/run.sh" "$IMG" \
    "cd /tmp && GTEST_COLOR=no GTEST_TOTAL_SHARDS=$SHARDS GTEST_SHARD_INDEX=$i$PASS_ENV $ROOT/build/tests/e2e_tests" \
    4096 >"$OUT/shard-$i.log" 2>&1 || rc=$?
  echo $rc >"$OUT/shard-$i.rc"
  echo "shard $i/$SHARDS: exit $(cat "$OUT/shard-$i.rc"), $(grep -c '^\[       OK \]' "$OUT/shard-$i.log") passed, $(grep -c '^\[  FAILED  \].*(' "$OUT/shard-$i.log") failed, $(grep -c '^\[  SKIPPED \].*(' "$OUT/shard-$i.log") skipped ($(( $(date +%s) - start )) s)"
}
running=()
for ((i = 0; i < SHARDS; i++)); do
  if ((${#running[@]} >= JOBS)); then
    wait "${running[0]}" || true
    running=("${running[@]:1}")
  fi
  run_shard "$i" &
  running+=($!)
done
wait
ok=0 failed=0 skipped=0 status=0
for ((i = 0; i < SHARDS; i++)); do
  ok=$((ok + $(grep -c '^\[       OK \]' "$OUT/shard-$i.log" || true)))
  failed=$((failed + $(grep -c '^\[  FAILED  \].*(' "$OUT/shard-$i.log" || true)))
  skipped=$((skipped + $(grep -c '^\[  SKIPPED \].*(' "$OUT/shard-$i.log" || true)))
  rc=$(cat "$OUT/shard-$i.rc")
  if [ "$rc" != 0 ]; then
    status=1
    if ! grep -q '^\[==========\].*ran' "$OUT/shard-$i.log"; then
      echo "--- shard $i did not finish (exit $rc); the test it was in:"
      tr -d '\r' <"$OUT/shard-$i.log" | grep '^\[ RUN      \]' | tail -1
      # A kernel that locked up panics (run.sh: softlockup_panic): its first
      # report, with the call trace, says where.
      if grep -q 'BUG:\|Kernel panic' "$OUT/shard-$i.log"; then
        echo "--- the guest kernel's first report:"
        tr -d '\r' <"$OUT/shard-$i.log" | sed -n '/BUG:\|Kernel panic/,$p' | head -60
      fi
      echo "--- its console ends:"
      tail -20 "$OUT/shard-$i.log"
    fi
  fi
done
echo
echo "on $(grep -h -o 'crl-vm: kernel [^,]*' "$OUT"/shard-0.log | head -1 | sed 's/crl-vm: //'): $ok passed, $failed failed, $skipped skipped in $(( $(date +%s) - start )) s"
# Each failed test's whole output, from its RUN line (the shard logs go
# with the VM): what CI shows of a failure on 6.1.
for ((i = 0; i < SHARDS; i++)); do
  tr -d '\r' <"$OUT/shard-$i.log" | awk '/^\[ RUN      \]/ { buf = "" } { buf = buf $0 "\n" }
    /^\[  FAILED  \].*\(/ { printf "%s", buf; buf = "" }' | tail -c 20000 || true
done
for ((i = 0; i < SHARDS; i++)); do
  grep -h -B1 '^\[  SKIPPED \].*(' "$OUT/shard-$i.log" | tr -d '\r' || true
done
exit $status
