#!/usr/bin/env bash
# Boots one testbed guest (QEMU, TCG) and runs one command inside it; see README.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: run-guest.sh [options] [--] COMMAND [ARG...]     run COMMAND ARG... (exact argv) in the guest
       run-guest.sh [options] -c 'SHELL CODE'            run SHELL CODE with bash -c
       run-guest.sh [options] --script FILE [ARG...]     run a host script with bash

  --shape S          pci (default): q35 + intel-iommu + edu (02.0) + nvme (03.0) + edu (04.0), each alone in
                     its IOMMU group (2, 3, 4); a conventional PCI bridge (05.0, no driver) with edu (01:01.0,
                     bound to vfio-pci) and virtio-rng-pci (01:02.0, left on the host's virtio-pci driver)
                     behind it: all three in IOMMU group 5, which is therefore not viable; QEMU's
                     pci-testdev (10.0: a memory BAR, an I/O BAR and a 64-bit prefetchable 2 MiB BAR); a
                     PCIe root port (11.0) with edu alone behind it (02:00.0, with a 4 KiB option ROM the run
                     writes to a temporary file), so the kernel allows a bus reset; a second root port (12.0)
                     with a two-function edu (03:00.0 bound to vfio-pci, 03:00.1 left without a driver)
                     pci-intremap-off: the same with intel-iommu,intremap=off, plus qemu-xhci with msi=on,msix=off
                     (13.0: 16 MSI vectors, bound to vfio-pci)
                     noiommu: q35 without IOMMU, vfio no-IOMMU mode, edu with a 64-bit DMA mask
                     platform: microvm + virtio-mmio rng and virtio-blk (1 MiB scratch image), no IOMMU,
                     vfio no-IOMMU mode
  --results DIR      host folder shared writable at /run/results in the guest (created; default: a new
                     folder under ${TMPDIR:-/tmp}); the testbed's own files go to DIR/testbed/
  --timeout SEC      kill QEMU after SEC seconds (default 600)
  --memory SIZE      guest RAM (default 2G)
  --smp N            guest CPUs (default 2)
  --cwd DIR          working folder of the command in the guest (default: the current folder); one under
                     the host's /tmp, /var/tmp, /run or /dev/shm (hidden in the guest) is shared read-only
  --env NAME=VALUE   set an environment variable for the command (repeatable);
  --env NAME         ... copying the host's value
  --bind LIST        devices to bind for VFIO, comma-separated: none | pci:BDF | platform:NAME |
                     virtio-mmio:ID (the transport carrying virtio device ID). Default: pci shapes
                     pci:0000:00:02.0,pci:0000:00:03.0,pci:0000:00:04.0,pci:0000:01:01.0 (edu, nvme, edu, edu
                     behind the bridge), then pci:0000:00:10.0,pci:0000:02:00.0,pci:0000:03:00.0 (pci-testdev,
                     the edus behind the root ports), and pci-intremap-off pci:0000:00:13.0 (qemu-xhci);
                     platform virtio-mmio:4,virtio-mmio:2 (rng, blk)
  --share DIR[:ro|:rw]  also share host folder DIR at the same path in the guest (default ro; repeatable)
  --append ARGS      extra kernel command-line arguments
  --qemu-arg ARG     extra QEMU argument (repeatable)
  --kernel FILE, --initrd FILE   instead of those from prepare.sh (also VFIO_TESTBED_KERNEL/_INITRD)
  --console          also copy the guest's serial console to stderr while it runs
  --quiet            do not copy the command's output to stdout while it runs

Exit status: the command's own status when the testbed saw no failure; otherwise
  201 QEMU exited non-zero (e.g. abort)   202 kernel panic   203 kernel WARNING/BUG/Oops
  204 timeout (host kill or guest watchdog)   205 guest setup failed (mount, bind, cwd)
  206 no exit code recorded   207 QEMU's edu device reported a guest error (out-of-range DMA)
  208 the guest kernel's timers stalled (an RCU stall report; QEMU TCG), the run was stopped
  130 interrupted   2 usage error   3 testbed not prepared (run prepare.sh)
EOF
}

shape=pci results='' timeout=600 memory=2G smp=2 cwd=$PWD bind='' append='' console=0 quiet=0
mode=argv code='' script=''
envs=() shares=() qemu_extra=()
kernel=${VFIO_TESTBED_KERNEL:-} initrd=${VFIO_TESTBED_INITRD:-}

TB_DIE_CODE=2
need() { [ $# -ge 2 ] || tb_die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --shape) need "$@"; shape=$2; shift 2 ;;
    --results) need "$@"; results=$2; shift 2 ;;
    --timeout) need "$@"; timeout=$2; shift 2 ;;
    --memory) need "$@"; memory=$2; shift 2 ;;
    --smp) need "$@"; smp=$2; shift 2 ;;
    --cwd) need "$@"; cwd=$2; shift 2 ;;
    --env) need "$@"; envs+=("$2"); shift 2 ;;
    --bind) need "$@"; bind=$2; shift 2 ;;
    --share) need "$@"; shares+=("$2"); shift 2 ;;
    --append) need "$@"; append="$append $2"; shift 2 ;;
    --qemu-arg) need "$@"; qemu_extra+=("$2"); shift 2 ;;
    --kernel) need "$@"; kernel=$2; shift 2 ;;
    --initrd) need "$@"; initrd=$2; shift 2 ;;
    --console) console=1; shift ;;
    --quiet) quiet=1; shift ;;
    -c) need "$@"; mode=code; code=$2; shift 2 ;;
    --script) need "$@"; mode=script; script=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) tb_die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
argv=("$@")
case "$mode" in
  argv) [ ${#argv[@]} -gt 0 ] || tb_die "no command given (see --help)" ;;
  code) [ ${#argv[@]} -eq 0 ] || tb_die "-c takes its code as one argument; extra arguments: ${argv[*]}" ;;
  script) [ -f "$script" ] || tb_die "no such script: $script" ;;
esac
[[ $timeout =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || tb_die "--timeout wants a positive number of seconds"
[[ $smp =~ ^[0-9]+$ ]] || tb_die "--smp wants a number"
[[ $cwd == /* ]] || tb_die "--cwd wants an absolute path"
case "$shape" in
  pci|noiommu) : "${bind:=pci:0000:00:02.0,pci:0000:00:03.0,pci:0000:00:04.0,pci:0000:01:01.0,pci:0000:00:10.0,pci:0000:02:00.0,pci:0000:03:00.0}" ;;
  # The same, and the multiple-message MSI device (qemu-xhci, below).
  pci-intremap-off) : "${bind:=pci:0000:00:02.0,pci:0000:00:03.0,pci:0000:00:04.0,pci:0000:01:01.0,pci:0000:00:10.0,pci:0000:02:00.0,pci:0000:03:00.0,pci:0000:00:13.0}" ;;
  platform) : "${bind:=virtio-mmio:4,virtio-mmio:2}" ;;
  *) tb_die "unknown shape '$shape' (pci, pci-intremap-off, noiommu, platform)" ;;
esac
for b in ${bind//,/ }; do
  [[ $b =~ ^(none|pci:[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]|platform:[A-Za-z0-9_.:-]+|virtio-mmio:[0-9]+)$ ]] \
    || tb_die "bad --bind item '$b'"
done

# ---------------------------------------------------------------- what prepare.sh built
TB_DIE_CODE=3
QEMU=
if [ -f "$TESTBED_ENV" ]; then
  # shellcheck disable=SC1090
  . "$TESTBED_ENV"
  if [ -z "${VFIO_TESTBED_KERNEL:-}" ] && [ "$kernel" = "" ]; then
    [ "$FRAGMENT_SHA256" = "$(tb_sha256 "$TESTBED_FRAGMENT")" ] \
      || tb_die "the cached kernel was built from another kernel.fragment; run $TESTBED_DIR/prepare.sh"
    kernel=$KERNEL
  fi
  if [ -z "${VFIO_TESTBED_INITRD:-}" ] && [ "$initrd" = "" ]; then
    [ "$INIT_SHA256" = "$(tb_sha256 "$TESTBED_INIT")" ] \
      || tb_die "the cached initramfs was built from another init; run $TESTBED_DIR/prepare.sh"
    initrd=$INITRD
  fi
fi
[ -n "$QEMU" ] || QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$kernel" ] && [ -f "$kernel" ] || tb_die "no guest kernel (${kernel:-none}); run $TESTBED_DIR/prepare.sh"
[ -n "$initrd" ] && [ -f "$initrd" ] || tb_die "no guest initramfs (${initrd:-none}); run $TESTBED_DIR/prepare.sh"
[ -n "$QEMU" ] && [ -x "$QEMU" ] || tb_die "no qemu-system-x86_64; run $TESTBED_DIR/prepare.sh"

# ---------------------------------------------------------------- the results share and the job
TB_DIE_CODE=2
if [ -z "$results" ]; then
  results=$(mktemp -d "${TMPDIR:-/tmp}/vfio-testbed.XXXXXX")
fi
mkdir -p "$results"
results=$(cd "$results" && pwd)
TB=$results/testbed
mkdir -p "$TB"
rm -f "$TB"/{job.sh,script.sh,bind,mounts,config,bound,output.log,serial.log,qemu.log,dmesg.txt,exit-code} \
      "$TB"/{init-error,job-error,guest-timeout,guest-stall,deadline,job-started,job-ended,status,summary,qemu-guest-errors.log,qemu.cmdline}

# QEMU option values: a comma is written twice.
qv() { printf '%s' "${1//,/,,}"; }

mount_lines=()
n=0
for s in "${shares[@]}"; do
  dir=$s share_mode=ro
  case "$s" in *:ro) dir=${s%:ro} ;; *:rw) dir=${s%:rw}; share_mode=rw ;; esac
  [ -d "$dir" ] || tb_die "--share: no such folder: $dir"
  dir=$(cd "$dir" && pwd)
  [[ $dir != *$'\n'* ]] || tb_die "--share: newline in path"
  mount_lines+=("share$n $share_mode $dir")
  n=$((n + 1))
done

# The guest mounts its own tmpfs on /tmp, /var/tmp, /run and /dev/shm, which hides the host's. A working folder the
# host has there (a checkout cloned into /tmp) is therefore shared into the guest at the same path, read-only like
# the rest of the host root, unless a --share already covers it.
if [ -d "$cwd" ]; then
  cwd_host=$(cd "$cwd" && pwd -P)
  case "$cwd_host/" in
    /tmp/*|/var/tmp/*|/run/*|/dev/shm/*)
      covered=0
      for line in "${mount_lines[@]}"; do
        read -r _ _ dir <<< "$line"
        [[ "$cwd_host/" == "$dir/"* ]] && covered=1
      done
      if [ $covered = 0 ]; then
        [[ $cwd_host != *$'\n'* ]] || tb_die "--cwd: newline in path"
        mount_lines+=("share$n ro $cwd_host")
        n=$((n + 1))
      fi
      cwd=$cwd_host ;;
  esac
fi

dotnet_root=${DOTNET_ROOT:-}
if [ -z "$dotnet_root" ] && command -v dotnet >/dev/null; then
  dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
fi
{
  echo '#!/bin/bash'
  echo '# Generated by run-guest.sh; run by the guest /init in the chroot with an empty environment.'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo 'export HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 TERM=dumb'
  [ -n "$dotnet_root" ] && printf 'export DOTNET_ROOT=%q\n' "$dotnet_root"
  echo 'export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1'
  echo 'export DOTNET_GENERATE_ASPNET_CERTIFICATE=false DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE=1'
  printf 'export VFIO_TESTBED=1 VFIO_TESTBED_SHAPE=%q VFIO_TESTBED_RESULTS=/run/results\n' "$shape"
  for e in "${envs[@]}"; do
    if [[ $e == *=* ]]; then
      name=${e%%=*} value=${e#*=}
    else
      name=$e
      [ -n "${!name+set}" ] || tb_die "--env $name: not set on the host"
      value=${!name}
    fi
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || tb_die "--env: bad variable name '$name'"
    printf 'export %s=%q\n' "$name" "$value"
  done
  printf 'cd -- %q || { echo "run-guest: cannot cd to %q in the guest" | tee /run/results/testbed/job-error >&2; exit 125; }\n' "$cwd" "$cwd"
  case "$mode" in
    argv) printf 'exec'; printf ' %q' "${argv[@]}"; printf '\n' ;;
    code) printf 'exec bash -c %q\n' "$code" ;;
    script) printf 'exec bash /run/results/testbed/script.sh'; [ ${#argv[@]} -eq 0 ] || printf ' %q' "${argv[@]}"; printf '\n' ;;
  esac
} > "$TB/job.sh"
[ "$mode" = script ] && cp "$script" "$TB/script.sh"
echo "${bind//,/ }" > "$TB/bind"
[ ${#mount_lines[@]} -eq 0 ] || printf '%s\n' "${mount_lines[@]}" > "$TB/mounts"
# The guest watchdog kills the command early enough to still collect dmesg before the host kills QEMU. The host
# decides when, on its own clock (it creates testbed/deadline): the guest's clock is only as right as the TSC rate
# it was told, and a test run must not end early, or late, because of it.
watchdog=0
[ "$timeout" -lt 60 ] || watchdog=$((timeout - 30))
echo "WATCHDOG=$watchdog" > "$TB/config"
: > "$TB/output.log"

# ---------------------------------------------------------------- QEMU
# Under TCG the guest's TSC is the host's TSC. Telling the guest its rate skips the PIT calibration, which
# fails on a loaded host (microvm has no HPET/PM timer to fall back on and then hangs in calibrate_delay),
# and tsc=reliable keeps the clocksource watchdog, whose QEMU-timer references lag under load, from
# switching the guest to a slow or coarse clocksource. The rate is BogoMIPS/2, which Linux derives from the TSC.
# no_timer_check skips the boot-time check that the IO-APIC timer ticks through interrupt remapping: on a loaded
# host the emulated ticks arrive late and the check panics ("timer doesn't work through Interrupt-remapped IO-APIC").
tsc_khz=${VFIO_TESTBED_TSC_KHZ:-$(awk -F: '$1 ~ /^bogomips/ { printf "%d", $2 * 500; exit }' /proc/cpuinfo)}
kargs="console=ttyS0 panic=-1 quiet loglevel=5 printk.time=1 tsc=reliable no_timer_check"
if [[ $tsc_khz =~ ^[0-9]+$ ]] && [ "$tsc_khz" -gt 100000 ] && [ "$tsc_khz" -lt 20000000 ]; then
  kargs="$kargs tsc_early_khz=$tsc_khz"
else
  tb_log "warning: host TSC rate unknown (set VFIO_TESTBED_TSC_KHZ); the guest calibrates it and may hang on a busy host"
fi
P9='security_model=none'
# -d guest_errors: device models report misuse there (e.g. edu's out-of-range DMA, which QEMU 10 logs and
# then performs, corrupting its heap).
# Single-threaded TCG: with one thread per vCPU (MTTCG) an idle vCPU's timer wake-up was seen lost in 2 of ~25
# boots (RCU stall, "timer wakeup didn't happen", also with nohz=off); 0 of 13 since, at the same speed here.
# VFIO_TESTBED_TCG_THREAD=multi brings MTTCG back.
qemu=("$QEMU" -accel "tcg,thread=${VFIO_TESTBED_TCG_THREAD:-single}" -cpu max -m "$memory" -smp "$smp" -nodefaults -display none -no-reboot
      -d guest_errors -D "$TB/qemu-guest-errors.log"
      -chardev "file,id=con,path=$(qv "$TB/serial.log")" -serial chardev:con
      -kernel "$kernel" -initrd "$initrd")
nvme_img= blk_img= rom_file=
cleanup() {
  [ -z "${tail_pids:-}" ] || kill $tail_pids 2>/dev/null || true
  [ -z "$nvme_img" ] || rm -f "$nvme_img"
  [ -z "$blk_img" ] || rm -f "$blk_img"
  [ -z "$rom_file" ] || rm -f "$rom_file"
}
# A 4 KiB option ROM for the edu behind the first root port, as Linux's pci_get_rom_size accepts it: the 0x55 0xAA
# signature, the PCI data structure ("PCIR" at 0x20: edu's IDs and class, an image of 8 x 512 bytes, code type 3 (EFI),
# the last-image bit) and a marker at 0x40 the tests read. Byte 2 (the legacy size) is 0 so the firmware does not run it.
write_option_rom() {
  { printf '\x55\xaa\x00'; head -c 21 /dev/zero; printf '\x20\x00'; head -c 6 /dev/zero
    printf 'PCIR\x34\x12\xe8\x11\x00\x00\x18\x00\x00\x00\xff\x00\x08\x00\x00\x00\x03\x80\x00\x00'
    head -c 8 /dev/zero; printf 'VFIO for .NET option ROM'; } > "$1"
  truncate -s 4096 "$1"
}
trap cleanup EXIT
case "$shape" in
  pci|pci-intremap-off|noiommu)
    nvme_img=$(mktemp "${TMPDIR:-/tmp}/vfio-testbed-nvme.XXXXXX")
    truncate -s 64M "$nvme_img"
    rom_file=$(mktemp "${TMPDIR:-/tmp}/vfio-testbed-rom.XXXXXX")
    write_option_rom "$rom_file"
    qemu+=(-M q35)
    case "$shape" in
      pci) qemu+=(-device intel-iommu); kargs="$kargs intel_iommu=on" ;;
      # qemu-xhci with MSI on (qemu-xhci defaults to msi=off) and MSI-X off: 16 MSI vectors, of which x86 without
      # interrupt remapping gives the device one (the kernel's retry-with-fewer answer to a request for more). No USB
      # driver in the guest: it stays unbound.
      pci-intremap-off) qemu+=(-device intel-iommu,intremap=off -device qemu-xhci,addr=13.0,msi=on,msix=off); kargs="$kargs intel_iommu=on" ;;
      noiommu) kargs="$kargs intel_iommu=off vfio.enable_unsafe_noiommu_mode=1" ;;
    esac
    # Two edus (00:02.0 and 00:04.0, each alone in its IOMMU group) so a DMA space can hold two devices.
    # A group that is not viable: devices behind a conventional PCI bridge share its requester ID, so Linux puts the
    # bridge and all of them in one IOMMU group (5). The edu there is bound to vfio-pci, the virtio-rng stays on
    # virtio-pci (built in), which claims DMA ownership of the group. Without an IOMMU (noiommu) there are no groups
    # and that edu gets a no-IOMMU group of its own. The 9p transports take the next free slots (00:01.0, 00:06.0...).
    # PCI's own cases (Devices.Pci): pci-testdev for BAR decoding (memory, I/O, 64-bit prefetchable); a root port with
    # edu alone on its secondary bus (bus 02), where the kernel allows a bus reset (a hot reset under both backends, and
    # vfio-pci's function reset by the "bus" method) and which carries an option ROM; a second root port (bus 03) with
    # a two-function edu whose second function stays without a driver, so a hot reset of 03:00.0 affects a device no
    # VFIO user owns.
    edu_mask=; [ "$shape" = noiommu ] && edu_mask=,dma_mask=0xffffffffffffffff
    qemu+=(-device "edu,addr=02.0$edu_mask" -device "edu,addr=04.0$edu_mask"
           -device pci-bridge,id=br1,chassis_nr=1,bus=pcie.0,addr=05.0
           -device "edu,bus=br1,addr=01.0$edu_mask" -device virtio-rng-pci,bus=br1,addr=02.0
           -drive "file=$(qv "$nvme_img"),if=none,id=nv0,format=raw"
           -device nvme,addr=03.0,serial=vfiotestbed,drive=nv0
           -device pci-testdev,addr=10.0,membar=2M
           -device pcie-root-port,id=rp1,bus=pcie.0,chassis=2,slot=1,addr=11.0
           -device "edu,bus=rp1,addr=00.0,romfile=$(qv "$rom_file")$edu_mask"
           -device pcie-root-port,id=rp2,bus=pcie.0,chassis=3,slot=2,addr=12.0
           -device "edu,bus=rp2,addr=00.0,multifunction=on$edu_mask" -device "edu,bus=rp2,addr=00.1$edu_mask"
           -virtfs "local,path=/,mount_tag=hostroot,$P9,readonly=on,multidevs=remap"
           -virtfs "local,path=$(qv "$results"),mount_tag=results,$P9")
    for i in "${!mount_lines[@]}"; do
      read -r tag share_mode dir <<< "${mount_lines[$i]}"
      ro=; [ "$share_mode" = ro ] && ro=,readonly=on
      qemu+=(-virtfs "local,path=$(qv "$dir"),mount_tag=$tag,$P9,multidevs=remap$ro")
    done
    ;;
  platform)
    # Two virtio-mmio devices for vfio-platform, after the two 9p transports (LNRO0005:00, :01): the rng (:02) and a
    # virtio-blk (:03) on a 1 MiB scratch image (zeros, deleted afterwards) that carries the user-space driver's blocks.
    # The guest's built-in virtio_blk probes it at boot; binding the transport to vfio-platform removes that disk.
    blk_img=$(mktemp "${TMPDIR:-/tmp}/vfio-testbed-blk.XXXXXX")
    truncate -s 1M "$blk_img"
    kargs="$kargs vfio.enable_unsafe_noiommu_mode=1 vfio_platform.reset_required=0"
    qemu+=(-M microvm,acpi=on,rtc=on -global virtio-mmio.force-legacy=false
           -fsdev "local,id=hostroot,path=/,$P9,readonly=on,multidevs=remap"
           -device virtio-9p-device,fsdev=hostroot,mount_tag=hostroot
           -fsdev "local,id=results,path=$(qv "$results"),$P9"
           -device virtio-9p-device,fsdev=results,mount_tag=results
           -device virtio-rng-device
           -drive "file=$(qv "$blk_img"),if=none,id=blk0,format=raw"
           -device virtio-blk-device,drive=blk0)
    for i in "${!mount_lines[@]}"; do
      read -r tag share_mode dir <<< "${mount_lines[$i]}"
      ro=; [ "$share_mode" = ro ] && ro=,readonly=on
      qemu+=(-fsdev "local,id=$tag,path=$(qv "$dir"),$P9,multidevs=remap$ro"
             -device "virtio-9p-device,fsdev=$tag,mount_tag=$tag")
    done
    ;;
esac
qemu+=(-append "$kargs$append" "${qemu_extra[@]}")
printf '%q ' "${qemu[@]}" > "$TB/qemu.cmdline"; echo >> "$TB/qemu.cmdline"

tb_log "shape $shape, results $results, timeout ${timeout}s"
t_start=$(tb_now)
timeout -k 10 "$timeout" "${qemu[@]}" > "$TB/qemu.log" 2>&1 < /dev/null &
qpid=$!
# A guest whose timers stalled (RCU stall report) never recovers: stop it at once instead of at the timeout.
( while kill -0 $qpid 2>/dev/null; do
    if grep -qE 'rcu: INFO: rcu_(preempt|sched) detected stalls|kthread timer wakeup didn.t happen' "$TB/serial.log" 2>/dev/null; then
      grep -m1 -E 'rcu: INFO|timer wakeup' "$TB/serial.log" > "$TB/guest-stall"
      kill -TERM $qpid 2>/dev/null
      break
    fi
    sleep 2
  done ) &
stall_pid=$!
deadline_pid=
if [ "$watchdog" -gt 0 ]; then
  # Short sleeps, not one long one: killing this subshell would orphan a long sleep, which keeps every inherited fd
  # open (a caller's flock on the testbed included) until it ends.
  ( end=$((SECONDS + watchdog))
    while [ "$SECONDS" -lt "$end" ] && kill -0 $$ 2>/dev/null; do sleep 1; done
    [ "$SECONDS" -lt "$end" ] || : > "$TB/deadline" ) &
  deadline_pid=$!
fi
interrupted=0
trap 'interrupted=1; kill -TERM $qpid 2>/dev/null || true' INT TERM
tail_pids=
if [ "$quiet" = 0 ]; then
  tail -n +1 -s 0.2 -f --pid=$qpid "$TB/output.log" &
  tail_pids="$tail_pids $!"
fi
if [ "$console" = 1 ]; then
  touch "$TB/serial.log"
  tail -n +1 -s 0.2 -f --pid=$qpid "$TB/serial.log" >&2 &
  tail_pids="$tail_pids $!"
fi
while :; do
  qrc=0
  wait $qpid || qrc=$?
  [ "$interrupted" = 1 ] && kill -0 $qpid 2>/dev/null || break
done
for p in $tail_pids; do wait "$p" 2>/dev/null || true; done
tail_pids=
[ -z "$deadline_pid" ] || { kill "$deadline_pid" 2>/dev/null || true; wait "$deadline_pid" 2>/dev/null || true; }
kill "$stall_pid" 2>/dev/null || true; wait "$stall_pid" 2>/dev/null || true
t_end=$(tb_now)

# ---------------------------------------------------------------- verdict
status=0
msgs=()
fail() { msgs+=("$2"); [ "$status" != 0 ] || status=$1; }
serial=$TB/serial.log
[ -f "$serial" ] || : > "$serial"
if [ "$interrupted" = 1 ]; then
  fail 130 "interrupted"
elif [ -f "$TB/guest-stall" ]; then
  fail 208 "the guest kernel's timers stalled (QEMU TCG; not a test result): $(cat "$TB/guest-stall")"
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  fail 204 "timeout: the guest was still running after ${timeout}s; QEMU was killed"
elif [ -f "$TB/guest-timeout" ]; then
  fail 204 "timeout: the command was still running after $(cat "$TB/guest-timeout")s (guest watchdog); it was killed"
fi
guest_errors=$TB/qemu-guest-errors.log
if grep -q 'EDU:' "$guest_errors" 2>/dev/null; then
  fail 207 "QEMU's edu device reported a guest error (QEMU may be corrupted): $(grep -m1 'EDU:' "$guest_errors")"
fi
if [ "$interrupted" = 0 ] && [ ! -f "$TB/guest-stall" ] && [ "$qrc" != 0 ] && [ "$qrc" != 124 ] && [ "$qrc" != 137 ]; then
  fail 201 "QEMU exited with status $qrc: $(grep -v '^$' "$TB/qemu.log" | tail -n 3 | tr '\n' ' ')"
fi
if grep -q 'Kernel panic - not syncing' "$serial"; then
  fail 202 "kernel panic: $(grep -m1 'Kernel panic - not syncing' "$serial")"
fi
# Kernel reports start right after the printk timestamp ("[    1.234567] WARNING: CPU: 0 PID: 1 at ...");
# informational lines that merely contain the word (e.g. "RETBleed: WARNING: ...") do not count.
bad_re='^\[ *[0-9]+\.[0-9]+\] (watchdog: )?(WARNING:|BUG:|kernel BUG at|Oops:|general protection fault|UBSAN:)'
bad=$(cat "$serial" "$TB/dmesg.txt" 2>/dev/null | grep -E "$bad_re" | sort -u | head -n 5 || true)
if [ -n "$bad" ]; then
  fail 203 "kernel WARNING/BUG in the guest log: $(printf '%s' "$bad" | tr '\n' '|')"
fi
if [ -f "$TB/init-error" ]; then
  fail 205 "guest setup failed: $(cat "$TB/init-error")"
elif [ -f "$TB/job-error" ]; then
  fail 205 "guest setup failed: $(cat "$TB/job-error")"
fi
rc=
[ -f "$TB/exit-code" ] && rc=$(tr -d '[:space:]' < "$TB/exit-code")
if ! [[ $rc =~ ^[0-9]+$ ]]; then
  fail 206 "no exit code recorded by the guest (see $serial)"
fi

boot_to_command=
if [ -f "$TB/job-started" ]; then
  boot_to_command=$(tb_elapsed "$t_start" "$(stat -c '%.3Y' "$TB/job-started")")
fi
command_time=
if [ -f "$TB/job-started" ] && [ -f "$TB/job-ended" ]; then
  command_time=$(tb_elapsed "$(cat "$TB/job-started")" "$(cat "$TB/job-ended")")
  # The guest wrote its uptime into these files; the host's file system stamped them with the host's time.
  host_time=$(tb_elapsed "$(stat -c '%.3Y' "$TB/job-started")" "$(stat -c '%.3Y' "$TB/job-ended")")
  guest_clock=$(awk -v g="$command_time" -v h="$host_time" 'BEGIN { if (h >= 5) printf "%.2f", g / h }')
  if [ -n "$guest_clock" ] && awk -v r="$guest_clock" 'BEGIN { exit !(r < 0.8 || r > 1.25) }'; then
    tb_log "warning: the guest's clock ran at ${guest_clock}x the host's (TSC rate ${tsc_khz:-unknown} kHz given to the guest; set VFIO_TESTBED_TSC_KHZ)"
  fi
fi
if [ -s "$guest_errors" ]; then
  tb_log "note: QEMU logged $(wc -l < "$guest_errors") guest error line(s) in $guest_errors"
fi
summary="shape=$shape exit=${rc:-none} total=$(tb_elapsed "$t_start" "$t_end")s boot_to_command=${boot_to_command:-?}s command=${command_time:-?}s${guest_clock:+ guest_clock=${guest_clock}x}"
echo "$summary" > "$TB/summary"
if [ "$status" = 0 ]; then
  echo "ok $rc" > "$TB/status"
  tb_log "$summary"
  exit "$rc"
fi
{
  echo "fail $status"
  printf '%s\n' "${msgs[@]}"
} > "$TB/status"
for m in "${msgs[@]}"; do tb_log "FAIL: $m"; done
tb_log "$summary"
tb_log "serial log: $serial; last lines:"
tail -n 15 "$serial" | sed 's/^/  | /' >&2
exit "$status"
