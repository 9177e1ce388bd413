#!/bin/bash
# The VM smoke test CI runs (ctest label "vm"): builds the VM image from
# this build (Debian's 6.1 kernel), boots two VMs joined by a virtual network
# and migrates a small self-checking workload from VM a to VM b, which must
# find it running and intact, and a must no longer have it.
#
#   test-containers/vm/smoke.sh [IMAGE_DIR=build/vm] [MIB=32]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMG=${1:-$ROOT/build/vm}
MIB=${2:-32}
"$ROOT/test-containers/vm/build-image.sh" "$IMG" >/dev/null
G=$ROOT/test-containers/vm/guest-migrate.sh
"$ROOT/test-containers/vm/pair.sh" "$IMG" "sh $G a $MIB 1" "sh $G b"
