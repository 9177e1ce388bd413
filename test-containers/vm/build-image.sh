#!/bin/bash
# Builds what a test VM boots: Debian 12's own 6.1 kernel (fetched with
# apt-get download, nothing else from outside) and an initramfs holding
# busybox, criu-lite, the workloads and the test binaries with the libraries
# they need, at the same absolute paths as on this machine (the tests have
# them compiled in). The VM runs /init, which runs the command given on the
# kernel command line (crl.cmd=...) and powers off.
#
# With KERNEL (a bzImage with everything built in: linux-patches/build-kernel.sh's)
# the VM boots that instead of Debian's.
#
#   test-containers/vm/build-image.sh OUT_DIR [KERNEL]   (after scripts/build.sh; as root)
set -euo pipefail
OUT=${1:?usage: build-image.sh OUT_DIR [KERNEL]}
KERNEL=${2:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/build
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export DEBIAN_FRONTEND=noninteractive
for p in qemu-system-x86 busybox-static cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || NEED="${NEED:-} $p"
done
if [ -n "${NEED:-}" ]; then apt-get update -qq; apt-get install -y -qq $NEED >/dev/null; fi

# The kernel: Debian's cloud flavour of 6.1 (soft-dirty, no PAGEMAP_SCAN).
if [ -n "$KERNEL" ]; then
  rm -f "$OUT"/vmlinuz-*
  cp "$KERNEL" "$OUT/vmlinuz-$(basename "$KERNEL" | sed 's/^vmlinuz-//')"
elif ! ls "$OUT"/vmlinuz-* >/dev/null 2>&1; then
  apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || apt-get update -qq
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
  (cd "$OUT" && apt-get download "$pkg" >/dev/null 2>&1)
  dpkg-deb -x "$OUT"/"$pkg"_*.deb "$OUT/kernel"
  cp "$OUT"/kernel/boot/vmlinuz-* "$OUT"/
  rm -f "$OUT"/"$pkg"_*.deb
fi

R=$OUT/initramfs
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,run,etc}
cp /usr/bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
# Our binaries at their own paths, with every library they load.
# bash, ip (with netns), unshare, nsenter, pgrep/pkill: test-containers/hosts.sh, which
# the two-host tests use, needs the real ones, not busybox's; openssl makes the
# TLS tests' certificates, timeout kills migrate at fractions of a second;
# coreutils' tail and cat are real programs the tests checkpoint.
# The real servers the tests checkpoint (Debian's redis-server, nginx and
# python3 with its standard library) and nft, which the network-lock tests
# read tables with, where the install script put them.
bins=("$B/criu-lite" "$B/test-containers/workload" "$B/tests/e2e_tests" "$B/tests/unit_tests"
      "$B/test-containers/workload-static" "$B/test-containers/container"
      "$(command -v bash)" "$(command -v ip)" "$(command -v unshare)" "$(command -v nsenter)"
      "$(command -v pgrep)" "$(command -v openssl)" "$(command -v timeout)" /usr/bin/tail
      /usr/bin/cat)
for f in /usr/sbin/nft /usr/bin/redis-server /usr/sbin/nginx /usr/bin/python3 /usr/sbin/runc; do
  [ -x "$f" ] && bins+=("$f")
done
# criu-lite loads libarchive when it needs it (dlopen): ldd does not name it.
for f in /lib/x86_64-linux-gnu/libarchive.so.13 /usr/lib/x86_64-linux-gnu/libarchive.so.13; do
  [ -e "$f" ] && bins+=("$f") && break
done
PYLIB=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | head -1)
if [ -x /usr/bin/python3 ] && [ -n "$PYLIB" ]; then
  tar -C / --exclude=__pycache__ --exclude="${PYLIB#/}/test" --exclude="${PYLIB#/}/idlelib" \
      --exclude="${PYLIB#/}/tkinter" --exclude="${PYLIB#/}/ensurepip" -cf - "${PYLIB#/}" |
    tar -C "$R" -xf -
  bins+=("$PYLIB"/lib-dynload/*.so)
fi
for f in "${bins[@]}"; do
  mkdir -p "$R$(dirname "$f")"
  [ -e "$R$f" ] || cp "$f" "$R$f"  # a symlink's target (redis-server is redis-check-rdb)
  for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
  done
done
# Users the tests run servers as (nginx's workers are www-data's), and the
# directories nginx looks for at start.
printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n' >"$R/etc/group"
mkdir -p "$R/var/lib/nginx" "$R/var/log/nginx"
# procps' pkill is pgrep under another name; this busybox has neither.
ln -sf pgrep "$R/usr/bin/pkill"
mkdir -p "$R$ROOT/test-containers/vm"
cp "$ROOT/test-containers/hosts.sh" "$R$ROOT/test-containers/"
cp "$ROOT"/test-containers/vm/guest-*.sh "$ROOT"/test-containers/vm/guest-*.py "$R$ROOT/test-containers/vm/"
# The TLS tests make their certificates with openssl, which reads its config.
mkdir -p "$R$ROOT/tests/e2e" "$R/etc/ssl" "$R/usr/lib/ssl"
cp "$ROOT/tests/e2e/make-certs.sh" "$R$ROOT/tests/e2e/"
cp /etc/ssl/openssl.cnf "$R/etc/ssl/"
ln -sf /etc/ssl/openssl.cnf "$R/usr/lib/ssl/openssl.cnf"
KVER=$(basename "$OUT"/vmlinuz-* | sed 's/vmlinuz-//')
if [ -d "$OUT/kernel/lib/modules/$KVER" ]; then
  mkdir -p "$R/lib/modules/$KVER/kernel"
  # virtio-net (and the virtio PCI transport under it) for the network;
  # unix_diag because criu-lite asks UNIX_DIAG which sockets are pairs (a
  # running system loads it on demand); nf_tables (and what it needs) for
  # the network lock; bridge (and llc, stp under it) for a container's
  # veth in a bridge; overlay for a container's overlayfs root; the legacy
  # iptables' filter table (x_tables, ip_tables), which a network namespace
  # may hold and dump must refuse. In load order:
  : >"$R/lib/modules/load-order"
  for m in drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko \
           drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko \
           drivers/virtio/virtio_pci.ko net/core/failover.ko drivers/net/net_failover.ko \
           drivers/net/virtio_net.ko net/unix/unix_diag.ko drivers/net/veth.ko \
           net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko \
           lib/libcrc32c.ko net/netfilter/nfnetlink.ko net/netfilter/nf_tables.ko \
           fs/overlayfs/overlay.ko net/netfilter/x_tables.ko net/ipv4/netfilter/ip_tables.ko \
           net/ipv4/netfilter/iptable_filter.ko; do
    f=$(find "$OUT/kernel/lib/modules/$KVER" -path "*/$m*" | head -1)
    if [ -n "$f" ]; then
      cp "$f" "$R/lib/modules/$KVER/kernel/"
      echo "/lib/modules/$KVER/kernel/$(basename "$f")" >>"$R/lib/modules/load-order"
    fi
  done
fi
ln -sf "$(command -v bash)" "$R/bin/bash"
cat > "$R/init" <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# Pseudo-terminals (the pty tests): /dev/ptmx opens the devpts at /dev/pts.
mkdir -p /dev/pts && mount -t devpts -o ptmxmode=0666 devpts /dev/pts
# Room for images in memory: the root (the initramfs, on tmpfs) may grow.
# No tmpfs over /tmp: the project may live there (a CI clone in /tmp).
mount -o remount,size=90% / 2>/dev/null || [ -n "$(ls -A /tmp)" ] || mount -t tmpfs -o size=90% tmp /tmp
mount -t tmpfs run /run
# cgroup2 alone, as a modern distribution has it (the cgroup tests).
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo 1 > /proc/sys/vm/overcommit_memory 2>/dev/null
for m in $(cat /lib/modules/load-order 2>/dev/null); do
  insmod "$m" 2>/dev/null
done
ip link set lo up
CMD=$(sed -n 's/.*crl.cmd="\([^"]*\)".*/\1/p' /proc/cmdline)
echo "crl-vm: kernel $(uname -r), running: $CMD"
sh -c "$CMD"
echo "crl-vm: exit status $?"
poweroff -f
INIT
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$OUT/initramfs.gz")
echo "$OUT/vmlinuz-$KVER $OUT/initramfs.gz"
