#!/usr/bin/env bash
# Boots the ppc64le pseries probe guest (QEMU TCG) that prepare.sh built and prints the probe's answers.
# Run by hand, never from test.sh:
#   nice -n 19 tests/testbed/ppc64le/prepare.sh      # once (root): packages, kernel (make -j1), probe + initramfs
#   nice -n 19 tests/testbed/ppc64le/run-probe.sh    # ~10-20 min under TCG (timeout VFIO_PPC64LE_TIMEOUT, 1800 s); the full console log goes to $VFIO_PPC64LE_CACHE/probe.log
# The guest has edu on the default PHB (IOMMU group of PHB 0) and a pci-testdev on a second PHB (another group), both
# bound to vfio-pci by the probe, which is the guest's /init and powers the guest off when it is done.
set -euo pipefail
CACHE=${VFIO_PPC64LE_CACHE:-/var/cache/vfio-dotnet/testbed-ppc64le}
ENV=$CACHE/ppc64le.env
[ -f "$ENV" ] || { echo "${0##*/}: $ENV is missing: run prepare.sh first" >&2; exit 1; }
# shellcheck disable=SC1090
. "$ENV"
LOG=$CACHE/probe.log
timeout "${VFIO_PPC64LE_TIMEOUT:-1800}" "$QEMU" -M pseries -cpu power9 -m 1G -smp 1 -accel tcg \
  -nodefaults -nographic -chardev stdio,id=con,signal=off -device spapr-vty,chardev=con \
  -kernel "$KERNEL" -initrd "$INITRD" -append "console=hvc0 rdinit=/init quiet loglevel=4" \
  -device edu,bus=pci.0,addr=2 \
  -device spapr-pci-host-bridge,index=1,id=phb1 -device pci-testdev,bus=phb1.0,addr=3 \
  -no-reboot </dev/null 2>&1 | tee "$LOG"
grep -q '^probe: done' "$LOG" || { echo "${0##*/}: the probe did not finish (log: $LOG)" >&2; exit 1; }
