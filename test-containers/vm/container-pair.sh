#!/bin/bash
# The VM tests of a container migrating (ctest label vm): a container made
# by test-containers/container migrates from VM a to VM b (Debian's 6.1
# kernel: its mount tree read from /proc/PID/mountinfo, its root an initial
# ramfs). With GUEST guest-container.sh (the default) its init checks
# itself there; with guest-container-client.sh it is a server on a bridge
# whose client stays connected across the migration.
#
#   test-containers/vm/container-pair.sh [IMAGE_DIR=build/vm] [GUEST=guest-container.sh]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMG=${1:-$ROOT/build/vm}
G=$ROOT/test-containers/vm/${2:-guest-container.sh}
"$ROOT/test-containers/vm/build-image.sh" "$IMG" >/dev/null
"$ROOT/test-containers/vm/pair.sh" "$IMG" "bash $G a" "bash $G b"
