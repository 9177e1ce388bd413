#!/bin/bash
# Builds the test VM's kernel with process_vm_mmap: Debian's linux-source-6.12
# with linux-patches/patches/*.patch, configured as tinyconfig plus linux-patches/vm.config,
# everything built in. Prints the path of the bzImage.
#
# The result is cached outside the clone, keyed by the source package's
# version, the patches, the config fragment and this script, so a second
# run (another clone, CI again) reuses it: $CRL_KERNEL_CACHE, by default
# /var/cache/criu-lite/kernel/KEY/vmlinuz-6.12-pvmmap.
#
# The build is reproducible: fixed timestamp, user, host and version, no
# module signing, the same toolchain (Debian 12's gcc-12).
#
#   linux-patches/build-kernel.sh            (as root; about 10 minutes on two cores)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CRL_KERNEL_CACHE:-/var/cache/criu-lite/kernel}
export DEBIAN_FRONTEND=noninteractive

need=()
for p in linux-source-6.12 build-essential bc bison flex libelf-dev libssl-dev xz-utils cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

version=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( (echo "$version"; cat "$HERE"/patches/*.patch "$HERE/vm.config" "$0") | sha256sum | cut -c1-16)
out=$CACHE/$key
image=$out/vmlinuz-6.12-pvmmap
if [ -s "$image" ]; then
  echo "$image"
  exit 0
fi

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build-XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-kernel: linux-source-6.12 $version with $(ls "$HERE"/patches | wc -l) patch(es), in $work" >&2
tar -C "$work" -xf /usr/src/linux-source-6.12.tar.xz
src=$work/linux-source-6.12
for p in "$HERE"/patches/*.patch; do
  patch -s -p1 -d "$src" <"$p"
done

export KBUILD_BUILD_TIMESTAMP="2026-01-01 00:00:00 UTC" KBUILD_BUILD_USER=criu-lite \
  KBUILD_BUILD_HOST=criu-lite KBUILD_BUILD_VERSION=1 LOCALVERSION=-pvmmap
make -s -C "$src" tinyconfig >/dev/null
"$src"/scripts/kconfig/merge_config.sh -m -O "$src" "$src/.config" "$HERE/vm.config" >/dev/null
make -s -C "$src" olddefconfig >/dev/null
# An option the fragment asks for that Kconfig dropped (a dependency
# missing) would be a test failing for no visible reason: say it here.
missing=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  grep -qx "$line" "$src/.config" || { echo "build-kernel: $line not taken" >&2; missing=1; }
done <"$HERE/vm.config"
[ "$missing" = 0 ] || { echo "build-kernel: fix linux-patches/vm.config" >&2; exit 1; }

make -s -C "$src" -j"$(nproc)" bzImage >&2
mkdir -p "$out"
cp "$src/arch/x86/boot/bzImage" "$image.tmp"
mv "$image.tmp" "$image"
echo "$image"
