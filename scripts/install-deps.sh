#!/bin/bash
# Installs what criu-lite needs to build and test, from Debian's packages.
set -euo pipefail
PACKAGES=(g++ cmake make pkg-config libprotobuf-dev protobuf-compiler libzstd-dev
          libcli11-dev libgtest-dev libcap-dev libgnutls28-dev libnftables-dev nftables libxxhash-dev libarchive-dev libnl-3-dev libnl-route-3-dev openssl procps time bc iproute2 util-linux
          python3 redis-server nginx  # real servers the tests checkpoint
          runc podman  # container runtimes that drive criu-lite over CRIU's RPC
          qemu-system-x86 busybox-static cpio)  # the last three: the VM tests
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
