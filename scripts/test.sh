#!/bin/bash
# Installs, builds and runs the whole test suite (run as root: the end-to-end
# tests checkpoint and restore real processes). The VM smoke test (label vm)
# is part of it; the full suite in VMs (label vm-full) takes too long for CI:
# ctest -L vm-full runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 300 -LE vm-full "$@"
