#!/usr/bin/env bash
# Prepares the ppc64le (pseries) probe guest, idempotently, on a Debian 12 x86_64 machine. Run by hand, as root:
#   nice -n 19 tests/testbed/ppc64le/prepare.sh
# Everything lives in its own cache (VFIO_PPC64LE_CACHE, default /var/cache/vfio-dotnet/testbed-ppc64le), never in
# the x86 testbed's cache:
#   - packages: qemu-system-ppc (bookworm-backports), gcc-powerpc64le-linux-gnu, libc6-dev-ppc64el-cross,
#   - Debian's linux-source-6.12 (same package as the x86 testbed) cross-built with allnoconfig + ./kernel.fragment
#     (make -j1 by default: the machine is shared; VFIO_PPC64LE_JOBS overrides),
#   - the statically linked probe (./probe.c), which is also the initramfs's /init.
# On success the paths are written to $VFIO_PPC64LE_CACHE/ppc64le.env (KERNEL=, INITRD=, QEMU=).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VFIO_PPC64LE_CACHE:-/var/cache/vfio-dotnet/testbed-ppc64le}
JOBS=${VFIO_PPC64LE_JOBS:-1}
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "${0##*/}" "$*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

# ---------------------------------------------------------------- packages
missing=()
command -v qemu-system-ppc64 >/dev/null || missing+=(qemu-system-ppc)
command -v powerpc64le-linux-gnu-gcc >/dev/null || missing+=(gcc-powerpc64le-linux-gnu)
[ -f /usr/powerpc64le-linux-gnu/lib/libc.a ] || missing+=(libc6-dev-ppc64el-cross)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq -t bookworm-backports "${missing[@]}" >/dev/null \
    || { apt-get update -qq; apt-get install -y -qq -t bookworm-backports "${missing[@]}" >/dev/null; } \
    || die "apt-get install ${missing[*]} failed"
fi

# ---------------------------------------------------------------- kernel source (own copy)
PKG=linux-source-6.12
VERSION=${VFIO_PPC64LE_LINUX_VERSION:-$(apt-cache policy "$PKG" | awk '/Candidate:/ { print $2 }')}
[ -n "$VERSION" ] && [ "$VERSION" != "(none)" ] || die "no $PKG in the apt sources"
SRC=$CACHE/src/linux-$VERSION
OBJ=$CACHE/obj/linux-$VERSION
if [ ! -f "$SRC/.complete" ]; then
  dl=$CACHE/src/.download
  rm -rf "$dl" "$SRC"; mkdir -p "$dl/x"
  log "downloading $PKG=$VERSION"
  ( cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "$PKG=$VERSION" ) || die "apt-get download failed"
  dpkg -x "$dl"/${PKG}_*.deb "$dl/x"
  tarball=$(find "$dl/x/usr/src" -maxdepth 1 -name "$PKG.tar.*" | head -n 1)
  [ -n "$tarball" ] || die "no $PKG.tar.* in the package"
  tar -xf "$tarball" -C "$dl"
  mv "$dl/$PKG" "$SRC"
  rm -rf "$dl"
  touch "$SRC/.complete"
fi

# ---------------------------------------------------------------- kernel
FRAG_SHA=$(sha256sum "$HERE/kernel.fragment" | cut -c1-16)
KDIR=$CACHE/kernel/$VERSION-$FRAG_SHA
KERNEL=$KDIR/vmlinux
KMAKE=(make -C "$SRC" O="$OBJ" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu-)
if [ ! -f "$KERNEL" ]; then
  mkdir -p "$OBJ" "$KDIR"
  klog=$KDIR/build.log; : > "$klog"
  log "configuring (allnoconfig + kernel.fragment)"
  "${KMAKE[@]}" KCONFIG_ALLCONFIG="$HERE/kernel.fragment" allnoconfig >> "$klog" 2>&1 \
    || { tail -n 30 "$klog" >&2; die "allnoconfig failed (log: $klog)"; }
  bad=0
  while IFS= read -r line; do
    [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]] || continue
    grep -qxF "$line" "$OBJ/.config" || { log "config: $line not taken ($(grep -m1 -E "^${BASH_REMATCH[1]}=|^# ${BASH_REMATCH[1]} is not set" "$OBJ/.config" || echo absent))"; bad=1; }
  done < "$HERE/kernel.fragment"
  [ "$bad" = 0 ] || die "kernel.fragment not satisfied (see above)"
  log "building vmlinux with make -j$JOBS (log: $klog)"
  "${KMAKE[@]}" -j"$JOBS" vmlinux >> "$klog" 2>&1 || { tail -n 40 "$klog" >&2; die "kernel build failed (log: $klog)"; }
  cp "$OBJ/.config" "$KDIR/config"
  cp "$OBJ/vmlinux" "$KERNEL.tmp"; mv "$KERNEL.tmp" "$KERNEL"
fi

# ---------------------------------------------------------------- probe + initramfs (the probe is /init)
PROBE_SHA=$(sha256sum "$HERE/probe.c" | cut -c1-16)
IDIR=$CACHE/initramfs/$PROBE_SHA
INITRD=$IDIR/initramfs.cpio.gz
if [ ! -f "$INITRD" ]; then
  rm -rf "$IDIR"; mkdir -p "$IDIR/root/dev" "$IDIR/root/proc" "$IDIR/root/sys"
  powerpc64le-linux-gnu-gcc -static -O2 -Wall -Werror -o "$IDIR/root/init" "$HERE/probe.c" || die "probe build failed"
  ( cd "$IDIR/root" && find . | cpio -o -H newc --quiet | gzip -9 ) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
fi

printf 'KERNEL=%s\nINITRD=%s\nQEMU=%s\nLINUX_SOURCE_VERSION=%s\n' "$KERNEL" "$INITRD" "$(command -v qemu-system-ppc64)" "$VERSION" \
  | tee "$CACHE/ppc64le.env"
