#!/usr/bin/env bash
# Smoke test of the testbed: prepare.sh, then one guest per shape checking that the devices are bound
# for VFIO and .NET runs, then (unless --quick) the failure detection of run-guest.sh.
#
# usage: selftest.sh [--quick] [--results-root DIR]
#   --results-root DIR  where each case's results folder goes (default ${TMPDIR:-/tmp}/vfio-testbed-selftest)
#   --quick             only the four shapes, not the failure-detection cases
# Exit status 0 when every case passed, 1 otherwise.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root=${TMPDIR:-/tmp}/vfio-testbed-selftest
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --results-root) [ $# -ge 2 ] || tb_die "--results-root needs a value"; root=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) tb_die "unknown argument $1 (see --help)" ;;
  esac
done
mkdir -p "$root"
root=$(cd "$root" && pwd)

t_all=$(tb_now)
tb_log "prepare.sh"
t0=$(tb_now)
"$TESTBED_DIR/prepare.sh" > "$root/prepare.out"
prepare_time=$(tb_elapsed "$t0" "$(tb_now)")

passed=0 failed=0 report=()
# run_case NAME EXPECTED_STATUS [run-guest.sh options and command...]
run_case() {
  local name=$1 want=$2 rc=0 t res
  shift 2
  res=$root/$name
  rm -rf "$res"
  tb_log "case $name (expect exit $want)"
  t=$(tb_now)
  "$TESTBED_DIR/run-guest.sh" --quiet --results "$res" "$@" > "$root/$name.out" 2>&1 || rc=$?
  t=$(tb_elapsed "$t" "$(tb_now)")
  local summary
  summary=$(cat "$res/testbed/summary" 2>/dev/null || echo "no summary")
  if [ "$rc" = "$want" ] && [ -f "$res/testbed/serial.log" ]; then
    passed=$((passed + 1))
    report+=("PASS $name: exit $rc, wall ${t}s ($summary)")
  else
    failed=$((failed + 1))
    report+=("FAIL $name: exit $rc, wanted $want, wall ${t}s ($summary)")
    sed 's/^/    /' "$root/$name.out" >&2
    [ ! -s "$res/testbed/output.log" ] || sed 's/^/    guest| /' "$res/testbed/output.log" >&2
  fi
  if [ "$want" = 0 ]; then sed 's/^/    | /' "$res/testbed/output.log" 2>/dev/null || true; fi
}

edu=/sys/bus/pci/devices/0000:00:02.0
# Checks common to the PCI shapes: edu, nvme and the edu behind the bridge bound to vfio-pci, the virtio-rng behind
# the bridge left on virtio-pci, and the group node of edu.
pci_checks='
set -euo pipefail
for d in 0000:00:02.0 0000:00:03.0 0000:01:01.0; do
  drv=$(basename "$(readlink /sys/bus/pci/devices/$d/driver)")
  [ "$drv" = vfio-pci ] || { echo "$d is bound to $drv"; exit 1; }
done
drv=$(basename "$(readlink /sys/bus/pci/devices/0000:01:02.0/driver)")
[ "$drv" = virtio-pci ] || { echo "0000:01:02.0 (virtio-rng) is bound to $drv"; exit 1; }
[ "$(cat '$edu'/vendor):$(cat '$edu'/device)" = 0x1234:0x11e8 ] || { echo "00:02.0 is not edu"; exit 1; }
group=$(basename "$(readlink '$edu'/iommu_group)")
test -c /dev/vfio/vfio
'

run_case pci 0 --shape pci --timeout 300 --cwd "$TESTBED_DIR" -c "$pci_checks"'
ls -l /dev/vfio /dev/vfio/devices /dev/iommu
members=$(ls /sys/kernel/iommu_groups/5/devices | tr "\n" " ")
[ "$members" = "0000:00:05.0 0000:01:01.0 0000:01:02.0 " ] || { echo "IOMMU group 5 (the bridge group) holds $members"; exit 1; }
test -c /dev/vfio/5
test -c /dev/vfio/$group && test -c /dev/iommu
cdev=$(ls '$edu'/vfio-dev)
test -c /dev/vfio/devices/$cdev
echo "edu: vfio-pci, group /dev/vfio/$group, cdev /dev/vfio/devices/$cdev"
echo "PATH=$PATH DOTNET_ROOT=${DOTNET_ROOT:-} dotnet=$(command -v dotnet)"
echo "dotnet --version: $(dotnet --version)"
touch /run/results/written-by-guest
'
[ -f "$root/pci/written-by-guest" ] || { failed=$((failed + 1)); report+=("FAIL pci: results share not writable"); }

run_case platform 0 --shape platform --timeout 120 -c '
set -euo pipefail
ls -l /dev/vfio
test -c /dev/vfio/noiommu-0
read -r dev drv node _ < /run/results/testbed/bound
[ "$drv" = vfio-platform ] && [ "$node" = /dev/vfio/noiommu-0 ]
[ "$(basename "$(readlink /sys/bus/platform/devices/$dev/driver)")" = vfio-platform ]
echo "$dev (virtio-mmio rng transport): vfio-platform, /dev/vfio/noiommu-0"
read -r dev drv node _ < <(sed -n 2p /run/results/testbed/bound)
[ "$drv" = vfio-platform ] && [ "$node" = /dev/vfio/noiommu-1 ] && test -c /dev/vfio/noiommu-1
[ ! -e /sys/block/vda ]
echo "$dev (virtio-mmio blk transport): vfio-platform, /dev/vfio/noiommu-1, no vda left"
'

run_case pci-intremap-off 0 --shape pci-intremap-off --timeout 120 -c "$pci_checks"'
test -c /dev/vfio/$group && test -c /dev/iommu
echo "edu: vfio-pci, /dev/vfio/$group"
'

run_case noiommu 0 --shape noiommu --timeout 120 -c "$pci_checks"'
test -c /dev/vfio/noiommu-$group
echo "edu: vfio-pci, /dev/vfio/noiommu-$group"
'

if [ "$quick" = 0 ]; then
  run_case exit-code 7 --shape platform --timeout 120 -- bash -c 'exit 7'
  run_case no-bind 0 --shape pci --bind none --timeout 120 -c \
    "[ ! -e $edu/driver ] && [ ! -e /dev/vfio/2 ] && [ \"\$(cat /run/results/testbed/bound)\" = '' ]"
  run_case env-and-cwd 0 --shape platform --timeout 120 --cwd /usr/share --env 'A=x y$z' \
    -- bash -c '[ "$PWD" = /usr/share ] && [ "$A" = "x y\$z" ] && [ "$HOME" = /tmp ] && [ "$VFIO_TESTBED_SHAPE" = platform ]'
  # A working folder under the host's /tmp (hidden by the guest's tmpfs) is shared into the guest at its path.
  tmp_cwd=$(mktemp -d /tmp/vfio-testbed-cwd.XXXXXX)
  echo here > "$tmp_cwd/marker"
  run_case tmp-cwd 0 --shape platform --timeout 120 --cwd "$tmp_cwd" \
    -- bash -c '[ "$(cat marker)" = here ] && ! touch marker 2>/dev/null'
  rm -rf "$tmp_cwd"
  run_case kernel-warning 203 --shape platform --timeout 120 -c \
    'echo "<4>WARNING: CPU: 0 PID: 1 at selftest (injected through /dev/kmsg)" > /dev/kmsg'
  run_case kernel-panic 202 --shape platform --timeout 120 -c 'echo c > /proc/sysrq-trigger; sleep 30'
  # An out-of-range edu DMA (count 0x2000 > the 4 KiB buffer): QEMU 10 logs a guest error and overruns
  # its buffer (it may or may not crash later).
  run_case edu-dma-out-of-range 207 --shape pci --bind none --timeout 120 -c "
    echo 1 > $edu/enable
    bar=\$(awk 'NR == 1 { print \$1 }' $edu/resource)
    busybox devmem \$((bar + 0x80)) 64 0x1000
    busybox devmem \$((bar + 0x88)) 64 0x40000
    busybox devmem \$((bar + 0x90)) 64 0x2000
    busybox devmem \$((bar + 0x98)) 64 1
    sleep 10"
  run_case qemu-error 201 --shape platform --timeout 120 --qemu-arg -no-such-option -- true
  run_case bad-bind 205 --shape pci --bind pci:0000:00:09.0 --timeout 120 -- true
  run_case bad-cwd 205 --shape platform --cwd /no/such/folder --timeout 120 -- true
  run_case host-timeout 204 --shape platform --timeout 20 -- sleep 600
  run_case guest-watchdog 204 --shape platform --timeout 60 -- sleep 600
  run_case guest-stall 208 --shape platform --timeout 120 -c \
    'echo "<3>rcu: INFO: rcu_preempt detected stalls on CPUs/tasks: (injected through /dev/kmsg)" > /dev/kmsg; sleep 600' 
  [ -s "$root/guest-watchdog/testbed/dmesg.txt" ] \
    || { failed=$((failed + 1)); report+=("FAIL guest-watchdog: no dmesg.txt collected"); }
fi

echo
echo "selftest results (in $root):"
printf '  %s\n' "${report[@]}"
echo "  prepare.sh: ${prepare_time}s; selftest total: $(tb_elapsed "$t_all" "$(tb_now)")s; $passed passed, $failed failed"
[ "$failed" = 0 ]
