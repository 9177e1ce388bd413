#!/bin/bash
# Corrupted images, as a disk or an attacker makes them: one dump of the
# memory workload, then N variants, each a copy with one change (a byte set
# at random, a bit flipped, the file cut short, or emptied) in one of its
# files, restored with `restore -d`. Each outcome is counted: refused with a
# one-line error (what must happen to anything that matters), restored and
# the workload passes its own check (the change hit nothing that matters:
# stats, padding), restored but wrong (the workload fails its check: a
# silent corruption), criu-lite crashed, or hung (killed after 20 s).
#
#   tests/bench/corrupt_images.sh [N=300] [SEED=1]     (as root, after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-300}
SEED=${2:-1}
B=$PWD/build
W=$(mktemp -d /tmp/criu-lite-bench-corrupt-XXXXXX)
trap 'rm -rf "$W"' EXIT
RANDOM=$SEED
"$B/test-containers/workload" memory --dir "$W" </dev/null >"$W/out" 2>&1 &
pid=$!
while [ ! -f "$W/ready" ]; do sleep 0.1; done
"$B/criu-lite" dump -t "$pid" -D "$W/good"
wait $pid 2>/dev/null || true
files=($(cd "$W/good" && ls))
refused=0 fine=0 wrong=0 crashed=0 hung=0 multiline=0
for i in $(seq "$N"); do
  rm -rf "$W/v" && cp -a "$W/good" "$W/v"
  f=${files[$((RANDOM % ${#files[@]}))]}
  size=$(stat -c %s "$W/v/$f")
  case $((RANDOM % 4)) in
    0) off=$(( (RANDOM * 32768 + RANDOM) % (size > 0 ? size : 1) ))
       printf "\\x$(printf %02x $((RANDOM % 256)))" | dd of="$W/v/$f" bs=1 seek="$off" conv=notrunc status=none ;;
    1) off=$(( (RANDOM * 32768 + RANDOM) % (size > 0 ? size : 1) ))
       byte=$(od -An -tu1 -j "$off" -N1 "$W/v/$f" | tr -d ' ')
       printf "\\x$(printf %02x $(( ${byte:-0} ^ (1 << (RANDOM % 8)) )))" | dd of="$W/v/$f" bs=1 seek="$off" conv=notrunc status=none ;;
    2) truncate -s $((size / 2)) "$W/v/$f" ;;
    3) : > "$W/v/$f" ;;
  esac
  rm -f "$W/result"
  set +e
  timeout -s KILL 20 "$B/criu-lite" restore -D "$W/v" -d 2>"$W/err"
  rc=$?
  set -e
  if [ $rc = 0 ]; then
    kill -USR1 "$pid" 2>/dev/null
    for _ in $(seq 50); do [ -f "$W/result" ] && break; sleep 0.1; done
    if grep -q PASS "$W/result" 2>/dev/null; then fine=$((fine + 1)); else
      wrong=$((wrong + 1)); echo "restored wrong: $f ($(cat "$W/result" 2>/dev/null || echo no answer))"; fi
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.05
  elif [ $rc = 137 ]; then hung=$((hung + 1)); echo "hung: $f"
  elif [ $rc -gt 128 ]; then crashed=$((crashed + 1)); echo "crashed ($rc): $f"
  else
    refused=$((refused + 1))
    [ "$(wc -l < "$W/err")" -le 1 ] || { multiline=$((multiline + 1)); echo "more than one line: $f: $(head -c 300 "$W/err")"; }
  fi
done
echo "$N corrupted variants: $refused refused with an error ($multiline of them not in one line), $fine restored and passed their own check, $wrong restored wrong, $crashed crashed, $hung hung"
