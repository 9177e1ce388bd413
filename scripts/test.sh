#!/bin/bash
# Installs, builds and runs the whole test suite (run as root: the end-to-end
# tests checkpoint and restore real processes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 300 "$@"
