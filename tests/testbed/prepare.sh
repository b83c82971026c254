#!/usr/bin/env bash
# Prepares everything run-guest.sh needs, idempotently, on a Debian 12 machine:
#   - the bookworm-backports apt source (for QEMU 10),
#   - packages: qemu-system-x86 (>= 10), busybox-static, cpio, kernel build dependencies,
#   - the guest kernel: Debian's linux-source-6.12 + x86_64_defconfig + kvm_guest.config + kernel.fragment,
#   - the guest initramfs: static busybox + ./init.
# Build products live only in the cache (VFIO_TESTBED_CACHE, default /var/cache/vfio-dotnet/testbed),
# never in the repository. On success the paths are written to $VFIO_TESTBED_CACHE/testbed.env and
# printed on stdout in the same KEY=value form.
#
# Environment:
#   VFIO_TESTBED_CACHE          cache folder (default /var/cache/vfio-dotnet/testbed)
#   VFIO_TESTBED_LINUX_VERSION  pin the linux-source-6.12 package version (default: apt's candidate)
#   VFIO_TESTBED_JOBS           make -j value (default: nproc)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 0 ] || { echo "usage: ${0##*/}   (no arguments; see the header for environment variables)" >&2; exit 2; }

t_start=$(tb_now)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
mkdir -p "$TESTBED_CACHE"
# One prepare at a time per cache (the kernel object folder is shared between fragments).
exec 9>"$TESTBED_CACHE/.lock"
flock 9

# ---------------------------------------------------------------- apt
need_root() { [ "$(id -u)" = 0 ] || tb_die "$1 needs root; run ${0##*/} as root"; }

apt_updated=0
apt_update() {
  [ "$apt_updated" = 0 ] || return 0
  need_root "apt-get update"
  tb_log "apt-get update"
  apt-get update -qq || tb_die "apt-get update failed"
  apt_updated=1
}

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

# URI and keyring of the enabled "bookworm" entry, from deb822 .sources files or one-line .list files.
bookworm_entry() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; suites = ""; key = ""; enabled = 1
        for (i = 1; i <= NF; i++) {
          l = $i
          if (l ~ /^#/) continue
          if (l ~ /^URIs:/)      { sub(/^URIs:[ \t]*/, "", l); split(l, a, /[ \t]+/); uri = a[1] }
          if (l ~ /^Suites:/)    { sub(/^Suites:[ \t]*/, "", l); suites = " " l " " }
          if (l ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/, "", l); key = l }
          if (l ~ /^Enabled:[ \t]*no/) enabled = 0
        }
        gsub(/\t/, " ", suites)
        if (enabled && uri != "" && suites ~ / bookworm /) { print uri "\t" key; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" {
        key = ""; i = 2
        if ($2 ~ /^\[/) {
          for (; i <= NF; i++) {
            if ($i ~ /^\[?signed-by=/) { key = $i; sub(/^\[?signed-by=/, "", key); sub(/\]$/, "", key) }
            if ($i ~ /\]$/) { i++; break }
          }
        }
        if ($(i + 1) == "bookworm") { print $i "\t" key; exit }
      }' "$f"
  done
}

ensure_backports_source() {
  [ "$codename" = bookworm ] || { tb_log "not Debian 12 (codename '$codename'): skipping bookworm-backports"; return 0; }
  if grep -Eqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
    return 0
  fi
  need_root "adding the bookworm-backports apt source"
  local entry uri key
  entry=$(bookworm_entry | head -n 1)
  uri=${entry%%$'\t'*}
  key=${entry#*$'\t'}
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  if [ -z "$key" ] || [ ! -f "$key" ]; then key=/usr/share/keyrings/debian-archive-keyring.gpg; fi
  tb_log "adding apt source bookworm-backports ($uri)"
  {
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    [ -f "$key" ] && echo "Signed-By: $key"
  } > /etc/apt/sources.list.d/bookworm-backports.sources
  apt_updated=0
  apt_update
}

installed_version() {
  { dpkg-query -W -f='${Status}\t${Version}' "$1" 2>/dev/null || true; } | awk -F'\t' '$1 == "install ok installed" { print $2 }'
}

candidate_version() {
  { apt-cache policy "$1" 2>/dev/null || true; } | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

ensure_packages() {
  local p missing=()
  # Kernel build: gcc make flex bison bc libelf-dev libssl-dev libc6-dev, perl, xz-utils (source tarball).
  for p in busybox-static cpio flex bison bc make gcc libc6-dev libelf-dev libssl-dev perl xz-utils; do
    [ -n "$(installed_version "$p")" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    need_root "installing ${missing[*]}"
    [ -n "$(candidate_version "${missing[0]}")" ] || apt_update
    tb_log "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt_update; apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
      || tb_die "apt-get install ${missing[*]} failed"
  fi

  # QEMU >= 10 (QEMU 7.2 aborts on an edu DMA that covers the whole buffer).
  local qv
  qv=$(installed_version qemu-system-x86)
  if [ -z "$qv" ] || ! dpkg --compare-versions "$qv" ge 1:10; then
    need_root "installing qemu-system-x86 (>= 10)"
    local target=()
    [ "$codename" = bookworm ] && target=(-t bookworm-backports)
    apt_update
    tb_log "installing qemu-system-x86 ${target[*]}"
    apt-get install -y -qq --no-install-recommends "${target[@]}" qemu-system-x86 >/dev/null \
      || tb_die "apt-get install qemu-system-x86 failed"
    qv=$(installed_version qemu-system-x86)
    dpkg --compare-versions "$qv" ge 1:10 || tb_die "qemu-system-x86 $qv installed, but >= 10 is required"
  fi
  QEMU_VERSION=$qv
}

t_apt=$(tb_now)
ensure_backports_source
ensure_packages
t_apt_done=$(tb_now)

# ---------------------------------------------------------------- kernel
LINUX_PKG=linux-source-6.12
LINUX_VERSION=${VFIO_TESTBED_LINUX_VERSION:-}
if [ -z "$LINUX_VERSION" ]; then
  LINUX_VERSION=$(candidate_version "$LINUX_PKG")
  if [ -z "$LINUX_VERSION" ]; then apt_update; LINUX_VERSION=$(candidate_version "$LINUX_PKG"); fi
  [ -n "$LINUX_VERSION" ] || tb_die "no $LINUX_PKG package in the apt sources (bookworm-security)"
fi
FRAGMENT_SHA256=$(tb_sha256 "$TESTBED_FRAGMENT")
KERNEL_KEY=$LINUX_VERSION-${FRAGMENT_SHA256:0:16}
KERNEL_DIR=$TESTBED_CACHE/kernel/$KERNEL_KEY
KERNEL=$KERNEL_DIR/bzImage
SRC=$TESTBED_CACHE/src/linux-$LINUX_VERSION
OBJ=$TESTBED_CACHE/obj/linux-$LINUX_VERSION

fetch_source() {
  [ -f "$SRC/.complete" ] && return 0
  local dl=$TESTBED_CACHE/src/.download-$LINUX_VERSION
  rm -rf "$dl" "$SRC"
  mkdir -p "$dl/x"
  tb_log "downloading $LINUX_PKG=$LINUX_VERSION"
  # apt-get download as root would warn that _apt cannot write here; the folder is ours.
  ( cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "$LINUX_PKG=$LINUX_VERSION" ) \
    || { apt_update; ( cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "$LINUX_PKG=$LINUX_VERSION" ); } \
    || tb_die "apt-get download $LINUX_PKG=$LINUX_VERSION failed"
  tb_log "unpacking $LINUX_PKG"
  dpkg -x "$dl"/${LINUX_PKG}_*.deb "$dl/x"
  local tarball
  tarball=$(find "$dl/x/usr/src" -maxdepth 1 -name "$LINUX_PKG.tar.*" | head -n 1)
  [ -n "$tarball" ] || tb_die "no $LINUX_PKG.tar.* in the package"
  tar -xf "$tarball" -C "$dl"
  [ -f "$dl/$LINUX_PKG/Makefile" ] || tb_die "unexpected layout of $tarball"
  mv "$dl/$LINUX_PKG" "$SRC"
  rm -rf "$dl"
  touch "$SRC/.complete"
}

# Every line of the fragment must be in the final .config: CONFIG_X=v exactly; "# CONFIG_X is not set" as unset.
verify_config() {
  local config=$1 line name want bad=()
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      name=${BASH_REMATCH[1]}; want=${BASH_REMATCH[2]}
      grep -qxF "$name=$want" "$config" \
        || bad+=("$name: wanted $want, got $(grep -m1 -E "^$name=|^# $name is not set" "$config" || echo 'absent (dependencies not met)')")
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      name=${BASH_REMATCH[1]}
      if grep -q "^$name=" "$config"; then bad+=("$name: wanted unset, got $(grep -m1 "^$name=" "$config")"); fi
    fi
  done < "$TESTBED_FRAGMENT"
  if [ ${#bad[@]} -gt 0 ]; then
    printf '%s: ERROR: kernel config option not as required by %s:\n' "${0##*/}" "$TESTBED_FRAGMENT" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
}

build_kernel() {
  fetch_source
  mkdir -p "$OBJ" "$KERNEL_DIR"
  local log=$KERNEL_DIR/build.log jobs=${VFIO_TESTBED_JOBS:-$(nproc)}
  : > "$log"
  tb_log "configuring ($LINUX_VERSION + ${TESTBED_FRAGMENT##*/} ${FRAGMENT_SHA256:0:16})"
  # merge_config.sh writes temporary files into the current folder: run it from the object folder.
  ( cd "$OBJ" && ARCH=x86_64 "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" \
      "$SRC/arch/x86/configs/x86_64_defconfig" "$SRC/kernel/configs/kvm_guest.config" "$TESTBED_FRAGMENT" ) \
    >> "$log" 2>&1 || { tail -n 30 "$log" >&2; tb_die "merge_config.sh failed (log: $log)"; }
  make -C "$SRC" O="$OBJ" ARCH=x86_64 olddefconfig >> "$log" 2>&1 \
    || { tail -n 30 "$log" >&2; tb_die "make olddefconfig failed (log: $log)"; }
  verify_config "$OBJ/.config"
  tb_log "building bzImage with make -j$jobs (log: $log; ~7-10 min on 2 idle cores)"
  make -C "$SRC" O="$OBJ" ARCH=x86_64 -j"$jobs" bzImage >> "$log" 2>&1 \
    || { tail -n 40 "$log" >&2; tb_die "kernel build failed (log: $log)"; }
  cp "$OBJ/.config" "$KERNEL_DIR/config"
  cp "$OBJ/arch/x86/boot/bzImage" "$KERNEL.tmp"
  mv "$KERNEL.tmp" "$KERNEL"
  # Keep only the current version's source and object folders (about 2 GB each); bzImages stay.
  local d
  for d in "$TESTBED_CACHE"/src/linux-* "$TESTBED_CACHE"/obj/linux-*; do
    [ -e "$d" ] || continue
    [ "$d" = "$SRC" ] || [ "$d" = "$OBJ" ] || { tb_log "pruning $d"; rm -rf "$d"; }
  done
}

t_kernel=$(tb_now)
kernel_built=cached
if [ ! -f "$KERNEL" ]; then
  build_kernel
  kernel_built=built
fi
t_kernel_done=$(tb_now)

# ---------------------------------------------------------------- initramfs
BUSYBOX=/bin/busybox
INIT_SHA256=$(tb_sha256 "$TESTBED_INIT")
busybox_version=$(installed_version busybox-static)
INITRD_KEY=${INIT_SHA256:0:16}-busybox-${busybox_version//[^A-Za-z0-9.+~-]/_}
INITRD_DIR=$TESTBED_CACHE/initramfs/$INITRD_KEY
INITRD=$INITRD_DIR/initramfs.cpio.gz

build_initramfs() {
  [[ $("$BUSYBOX" 2>&1 || true) == *BusyBox* ]] || tb_die "$BUSYBOX is not busybox"
  mkdir -p "$INITRD_DIR"
  local stage
  stage=$(mktemp -d "$INITRD_DIR/.stage.XXXXXX")
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,newroot,etc}
  cp "$BUSYBOX" "$stage/bin/busybox"
  install -m 0755 "$TESTBED_INIT" "$stage/init"
  # /dev/console comes from the kernel's built-in initramfs, which is unpacked before this one.
  ( cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet --owner 0:0 ) | gzip -9n > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$stage"
}

initrd_built=cached
if [ ! -f "$INITRD" ]; then
  build_initramfs
  initrd_built=built
fi

# ---------------------------------------------------------------- result
QEMU=$(command -v qemu-system-x86_64) || tb_die "qemu-system-x86_64 not found after installation"
{
  printf 'KERNEL=%q\n' "$KERNEL"
  printf 'INITRD=%q\n' "$INITRD"
  printf 'QEMU=%q\n' "$QEMU"
  printf 'QEMU_VERSION=%q\n' "$QEMU_VERSION"
  printf 'LINUX_SOURCE_VERSION=%q\n' "$LINUX_VERSION"
  printf 'FRAGMENT_SHA256=%q\n' "$FRAGMENT_SHA256"
  printf 'INIT_SHA256=%q\n' "$INIT_SHA256"
} > "$TESTBED_ENV.tmp"
mv "$TESTBED_ENV.tmp" "$TESTBED_ENV"

t_end=$(tb_now)
tb_log "kernel $kernel_built ($(tb_elapsed "$t_kernel" "$t_kernel_done") s), initramfs $initrd_built, apt $(tb_elapsed "$t_apt" "$t_apt_done") s, total $(tb_elapsed "$t_start" "$t_end") s"
tb_log "wrote $TESTBED_ENV"
cat "$TESTBED_ENV"
