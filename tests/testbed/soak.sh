#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The guest soak: boots the pci testbed guest (Linux 6.12, QEMU TCG) and runs the conformance soak there
# (Vfio.Conformance.SoakTests: a new space, attach, map, an edu DMA round trip ending with its MSI, detach, in a loop)
# for --minutes, shared by the legacy, iommufd and iommufd-compat backends. Each backend's run compares the process's
# fds, its locked memory (VmLck + VmPin) and the kernel's vfio interrupt handlers at its start and end, and fails on
# any growth or on a kernel WARNING/BUG/call trace added to the log; the testbed also fails the boot on a kernel report.
# Prints each backend's figures (DIR/reliability-report.txt) and exits with the run's status.
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() {
  cat <<'EOF'
usage: tests/testbed/soak.sh [--minutes N] [--results DIR] [--with-stress SECONDS] [--bin DIR]
  --minutes N              the soak's length, shared by the three backends (default 10)
  --results DIR            where the guest's results go (default: a new folder under ${TMPDIR:-/tmp})
  --with-stress SECONDS    also run the lifecycle stress (StressTests) first, SECONDS per backend
  --bin DIR                the Vfio.Conformance build to run (default tests/Vfio.Conformance/bin/Release/net10.0;
                           a copy lets the tree be rebuilt while the soak runs)
Needs the Release build (dotnet build Vfio.slnx -c Release) and a prepared testbed (tests/testbed/prepare.sh).
EOF
}

minutes=10 results='' stress=0 bin=$PWD/tests/Vfio.Conformance/bin/Release/net10.0
while [[ $# -gt 0 ]]; do
  case $1 in
    --minutes) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; minutes=$2; shift 2 ;;
    --results) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; results=$2; shift 2 ;;
    --with-stress) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; stress=$2; shift 2 ;;
    --bin) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; bin=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $minutes =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: --minutes needs a whole number of minutes, at least 1 (got '$minutes')" >&2; exit 2; }
[[ $stress =~ ^[0-9]+$ ]] || { echo "soak.sh: --with-stress needs a whole number of seconds (got '$stress')" >&2; exit 2; }
# The guest sees the host's files read-only, except /tmp, /var/tmp, /run and /dev/shm, which it hides (the repository
# folder is shared even there, as the command's working folder).
case $bin/ in
  "$PWD"/*) ;;
  /tmp/*|/var/tmp/*|/run/*|/dev/shm/*)
    echo "soak.sh: --bin $bin is in a folder the guest does not see (/tmp, /var/tmp, /run and /dev/shm are its own): copy the build into the repository instead, e.g. artifacts/soakbin" >&2; exit 2 ;;
esac
dll=$bin/Vfio.Conformance.dll
[[ -f $dll ]] || { echo "soak.sh: $dll is missing: build first (dotnet build Vfio.slnx -c Release)" >&2; exit 3; }
results=${results:-$(mktemp -d "${TMPDIR:-/tmp}/vfio-soak.XXXXXX")}
mkdir -p "$results"
rm -f "$results/reliability-report.txt" "$results/soak.xml"
seconds=$((minutes * 60))
classes="-class Vfio.Conformance.SoakTests"
[[ $stress -gt 0 ]] && classes="-class Vfio.Conformance.StressTests $classes"

echo "soak.sh: ${minutes} min in the pci testbed guest (legacy, iommufd, iommufd-compat); results in $results"
rc=0
tests/testbed/run-guest.sh --shape pci --results "$results" --timeout $((seconds + 3 * stress + 900)) --quiet --env HOME=/tmp \
  --env DOTNET_CLI_TELEMETRY_OPTOUT=1 --env DOTNET_NOLOGO=1 --env VFIO_CONFORMANCE_TARGET=kernel \
  --env VFIO_SOAK_SECONDS=$seconds --env VFIO_STRESS_SECONDS=$stress \
  -c "dotnet $dll -noColor $classes -longRunning $((seconds + 60)) -xml /run/results/soak.xml" || rc=$?

if [[ -s $results/reliability-report.txt ]]; then
  sed 's/^/soak.sh: /' "$results/reliability-report.txt"
else
  echo "soak.sh: no report was written (see $results/testbed/output.log)" >&2
fi
if [[ $rc -ne 0 ]]; then
  echo "soak.sh: FAILED (exit $rc); the tests' output: $results/testbed/output.log, the kernel log: $results/testbed/dmesg.txt" >&2
  grep -E '\[FAIL\]|should|leaked|report' "$results/testbed/output.log" 2>/dev/null | head -20 >&2 || true
else
  echo "soak.sh: passed"
fi
exit $rc
