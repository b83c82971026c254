#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Fetches the Linux 6.12 uAPI headers (Debian's linux-libc-dev from bookworm-backports) into a private cache
# for the ABI tests, without installing them over the system headers. Idempotent; a warm cache returns at once.
#
# Usage: fetch-headers.sh            prints the include directory (the one holding linux/vfio.h)
# Environment:
#   VFIO_CACHE                 cache root (default /var/cache/vfio-dotnet)
#   LINUX_LIBC_DEV_VERSION     exact package version to fetch instead of the bookworm-backports candidate
#   VFIO_UAPI_REFRESH=1        ignore a warm cache and fetch the current candidate again
#
# Layout: $VFIO_CACHE/uapi-headers/<version>/usr/include            (arch-independent headers)
#         $VFIO_CACHE/uapi-headers/<version>/usr/include/<multiarch>  (asm/ headers; pass both to gcc -I)
#         $VFIO_CACHE/uapi-headers/current -> <version>
# Needs root (or a writable VFIO_CACHE) on Debian 12; only the apt source and the apt lists are touched
# outside the cache.
set -euo pipefail

cache_root="${VFIO_CACHE:-/var/cache/vfio-dotnet}/uapi-headers"
current="$cache_root/current"

headers_complete() {
  [[ -f "$1/usr/include/linux/vfio.h" && -f "$1/usr/include/linux/iommufd.h" ]] &&
    grep -q 'IOMMU_HWPT_ALLOC' "$1/usr/include/linux/iommufd.h"
}

if [[ "${VFIO_UAPI_REFRESH:-0}" != 1 && -z "${LINUX_LIBC_DEV_VERSION:-}" ]] && headers_complete "$current"; then
  echo "$(cd "$current/usr/include" && pwd -P)"
  exit 0
fi

if [[ -n "${LINUX_LIBC_DEV_VERSION:-}" ]] && headers_complete "$cache_root/$LINUX_LIBC_DEV_VERSION"; then
  ln -sfn "$LINUX_LIBC_DEV_VERSION" "$current"
  echo "$cache_root/$LINUX_LIBC_DEV_VERSION/usr/include"
  exit 0
fi

log() { echo "fetch-headers: $*" >&2; }

sources=/etc/apt/sources.list.d/bookworm-backports.sources
need_update=0
if ! grep -rqsE --include='*.sources' --include='*.list' '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d; then
  log "adding $sources"
  cat > "$sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_update=1
fi

candidate() {
  apt-cache madison linux-libc-dev 2>/dev/null | awk -F'|' '$3 ~ /bookworm-backports/ { gsub(/ /, "", $2); print $2; exit }'
}

version="${LINUX_LIBC_DEV_VERSION:-}"
if [[ -z "$version" ]]; then
  if [[ $need_update == 0 && -z "$(candidate)" ]]; then need_update=1; fi
  if [[ $need_update == 1 ]]; then
    log "apt-get update"
    apt-get update -qq >&2
  fi
  version="$(candidate)"
  if [[ -z "$version" ]]; then
    log "no linux-libc-dev in bookworm-backports after apt-get update"
    exit 1
  fi
fi

case "$version" in
  6.12.*) ;;
  *) log "linux-libc-dev $version is not a 6.12 version; set LINUX_LIBC_DEV_VERSION to a 6.12 one"; exit 1 ;;
esac

target="$cache_root/$version"
if ! headers_complete "$target"; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # Let apt's unprivileged download user write here (avoids the "unsandboxed as root" warning).
  if id _apt >/dev/null 2>&1; then chown _apt "$work" 2>/dev/null || true; fi
  log "downloading linux-libc-dev $version"
  if [[ -n "${LINUX_LIBC_DEV_VERSION:-}" ]]; then spec="linux-libc-dev=$version"; else spec="linux-libc-dev/bookworm-backports"; fi
  # apt-get download writes into the current directory; unsandboxed as root is fine for a plain download.
  (cd "$work" && apt-get download -qq "$spec" >&2)
  deb="$(find "$work" -maxdepth 1 -name 'linux-libc-dev_*.deb' | head -n 1)"
  [[ -n "$deb" ]] || { log "apt-get download produced no .deb"; exit 1; }
  mkdir -p "$cache_root"
  rm -rf "$target.tmp"
  mkdir -p "$target.tmp"
  dpkg -x "$deb" "$target.tmp"
  headers_complete "$target.tmp" || { log "the package has no linux/vfio.h + linux/iommufd.h with IOMMU_HWPT_ALLOC"; exit 1; }
  rm -rf "$target"
  mv "$target.tmp" "$target"
fi
ln -sfn "$version" "$current"
echo "$target/usr/include"
