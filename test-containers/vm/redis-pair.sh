#!/bin/bash
# The VM test of a real server migrating with its client (ctest label vm):
# Debian's redis-server migrates from VM a to VM b (Debian's 6.1 kernel)
# with --tcp-established, while a client on a third network endpoint (a
# network namespace in VM b) pings it over one connection; it must see no
# error (test-containers/vm/guest-redis.sh).
#
#   test-containers/vm/redis-pair.sh [IMAGE_DIR=build/vm]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMG=${1:-$ROOT/build/vm}
"$ROOT/test-containers/vm/build-image.sh" "$IMG" >/dev/null
G=$ROOT/test-containers/vm/guest-redis.sh
"$ROOT/test-containers/vm/pair.sh" "$IMG" "bash $G a" "bash $G b"
