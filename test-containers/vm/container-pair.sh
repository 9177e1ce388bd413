#!/bin/bash
# The VM test of a container migrating (ctest label vm): a container made by
# test-containers/container migrates from VM a to VM b (Debian's 6.1
# kernel: its mount tree read from /proc/PID/mountinfo, its root an initial
# ramfs) and checks itself there (test-containers/vm/guest-container.sh).
#
#   test-containers/vm/container-pair.sh [IMAGE_DIR=build/vm]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMG=${1:-$ROOT/build/vm}
"$ROOT/test-containers/vm/build-image.sh" "$IMG" >/dev/null
G=$ROOT/test-containers/vm/guest-container.sh
"$ROOT/test-containers/vm/pair.sh" "$IMG" "sh $G a" "sh $G b"
