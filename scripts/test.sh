#!/bin/bash
# Installs, builds and runs the whole test suite (run as root: the end-to-end
# tests checkpoint and restore real processes), including the VM tests
# (labels vm and vm-full: a migration between two VMs, and the end-to-end
# suite on Debian's 6.1 kernel; about 5 minutes under emulation).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 300 "$@"
