#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every test tier of the repository and ends with one line: "N passed, N failed[, N skipped]".
# On a fresh Debian 12 machine (root, .NET 10 SDK) it installs what it needs first; the caches it fills live
# under /var/cache/vfio-dotnet (VFIO_CACHE), never in the repository.
set -uo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
RESULTS="$ROOT/artifacts/test-results"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

total_passed=0 total_failed=0 total_skipped=0
tier_lines=()

fail_setup() {
  echo "test.sh: $1" >&2
  echo "0 passed, 1 failed"
  exit 1
}

# Reads an xunit v2-format XML result file and adds its counts to the totals, printing one line for the tier.
count_tier() {
  local tier=$1 xml=$2 exit_code=$3
  local passed=0 failed=0 skipped=0
  if [[ -s "$xml" ]]; then
    read -r passed failed skipped < <(python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
p = f = s = 0
for a in root.iter('assembly'):
    p += int(a.get('passed', 0)); f += int(a.get('failed', 0)) + int(a.get('errors', 0)); s += int(a.get('skipped', 0))
print(p, f, s)
PY
)
  else
    echo "tier $tier: no result file ($xml)" >&2
    failed=1
  fi
  # A runner that crashed or failed without reporting a failed case still fails the tier.
  if [[ $exit_code -ne 0 && $failed -eq 0 ]]; then
    echo "tier $tier: the runner exited with $exit_code" >&2
    failed=1
  fi
  total_passed=$((total_passed + passed)); total_failed=$((total_failed + failed)); total_skipped=$((total_skipped + skipped))
  local line="tier $tier: $passed passed, $failed failed"
  [[ $skipped -gt 0 ]] && line+=", $skipped skipped"
  tier_lines+=("$line")
  echo "$line"
}

# Prints, for information, the conformance results of a tier per mode (the theory rows name it: "(mode: Legacy...").
# These lines break the tier's count down; they add nothing to the totals.
mode_lines() {
  local tier=$1 xml=$2
  [[ -s "$xml" ]] || return 0
  python3 - "$tier" "$xml" <<'PY'
import sys, re, collections, xml.etree.ElementTree as ET
tier, path = sys.argv[1], sys.argv[2]
counts = collections.OrderedDict()
for t in ET.parse(path).getroot().iter('test'):
    m = re.search(r'\(mode: (\w+)', t.get('name', ''))
    if not m:
        continue
    c = counts.setdefault(m.group(1), collections.Counter())
    c[t.get('result', '')] += 1
names = {'Legacy': 'legacy', 'IommuFd': 'iommufd', 'IommuFdCompat': 'iommufd-compat', 'NoIommu': 'noiommu', 'Platform': 'platform', 'SpaprTce': 'spapr-tce'}
for mode, c in counts.items():
    line = f"  {tier} conformance {names.get(mode, mode)}: {c['Pass']} passed, {c['Fail']} failed"
    if c['Skip']:
        line += f", {c['Skip']} skipped"
    print(line)
PY
}

# --- Prerequisites -------------------------------------------------------------------------------------------
command -v dotnet >/dev/null || fail_setup "the .NET 10 SDK is required (dotnet not on PATH)"
# The ABI tests compile the uAPI's values with each architecture's gcc (-c only, never linked or run).
abi_compilers=(x86_64-linux-gnu-gcc:gcc aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu powerpc64le-linux-gnu-gcc:gcc-powerpc64le-linux-gnu)
missing=()
for entry in "${abi_compilers[@]}"; do command -v "${entry%%:*}" >/dev/null || missing+=("${entry#*:}"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  { apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }; } \
    || fail_setup "could not install the ABI tests' compilers (apt-get install ${missing[*]})"
fi
VFIO_UAPI_INCLUDE=$(tests/Vfio.Abi.Tests/fetch-headers.sh | tail -n 1) || fail_setup "could not fetch the 6.12 uAPI headers"
export VFIO_UAPI_INCLUDE
# The real-kernel testbed: QEMU 10, the guest kernel (built once per machine, cached) and its initramfs.
tests/testbed/prepare.sh >"$RESULTS/testbed-prepare.log" 2>&1 \
  || { tail -n 30 "$RESULTS/testbed-prepare.log" >&2; fail_setup "could not prepare the testbed (log: $RESULTS/testbed-prepare.log)"; }
grep -E '^prepare.sh: kernel .* total' "$RESULTS/testbed-prepare.log" | tail -n 1 | sed 's/^prepare.sh:/testbed:/'

# --- Build ---------------------------------------------------------------------------------------------------
dotnet build Vfio.slnx -c Release -v quiet -nologo -clp:ErrorsOnly || fail_setup "the build failed"

# --- Host tiers ----------------------------------------------------------------------------------------------
run_host_tier() {
  local tier=$1 project=$2
  local dll="$ROOT/$project/bin/Release/net10.0/$(basename "$project").dll"
  local xml="$RESULTS/$tier.xml"
  dotnet "$dll" -noColor -xml "$xml" >"$RESULTS/$tier.log" 2>&1
  local rc=$?
  grep -E '\[FAIL\]' -A 12 "$RESULTS/$tier.log" | head -80 >&2
  count_tier "$tier" "$xml" $rc
}

# The host hot-path benchmark harness, smoke only: the C baselines and the library compute the same results and the
# library allocates nothing (./bench.sh --smoke). Never a timing: ./bench.sh itself is run by hand (README.md).
bench_log="$RESULTS/host-bench-smoke.log"
if ./bench.sh --smoke >"$bench_log" 2>&1; then bench_passed=1 bench_failed=0; else bench_passed=0 bench_failed=1; tail -20 "$bench_log" >&2; fi
total_passed=$((total_passed + bench_passed)); total_failed=$((total_failed + bench_failed))
tier_lines+=("tier host-bench-smoke: $bench_passed passed, $bench_failed failed")
echo "tier host-bench-smoke: $bench_passed passed, $bench_failed failed"

# --- Real-kernel tiers (inside the QEMU guest, Linux 6.12 with VFIO + iommufd) ----------------------------
# The test executables are the host's build, seen read-only through the guest's host-root share; results come
# back through the writable results share. The testbed turns a QEMU abort, a kernel panic or WARN, a timeout or
# a missing exit code into a non-zero exit, which fails the tier even when the XML looks clean.
# usage: run_guest_tier TIER SHAPE "EXTRA XUNIT ARGS" PROJECT...
run_guest_tier() {
  local tier=$1 shape=$2 extra=$3; shift 3
  local dir="$RESULTS/$tier" code="rc=0;" project name
  mkdir -p "$dir"
  for project in "$@"; do
    name=$(basename "$project")
    # bench/: the guest benchmark harness's smoke pass (C from host-bench-smoke's build and the library agree, 0 B per operation; never a timing).
    [[ $project == bench/* ]] && { code+=" VFIO_BENCH_NATIVE=$ROOT/artifacts/bench/libvfiobench.so dotnet $ROOT/$project/bin/Release/net10.0/$name.dll --guest-goals --smoke -xml /run/results/$name.xml || rc=1;"; continue; }
    # Tier=host marks pure computation (no kernel call) that costs minutes under TCG; the host tiers run it.
    # -longRunning names a test that hangs in output.log, which the failure report below shows.
    code+=" dotnet $ROOT/$project/bin/Release/net10.0/$name.dll -noColor -trait- Tier=host -longRunning 120 $extra"
    code+=" -xml /run/results/$name.xml || rc=1;"
  done
  code+=' exit $rc'
  # VFIO_CONFORMANCE_TARGET=kernel points tests/Vfio.Conformance at the real kernel (the others ignore it).
  local attempt rc
  for attempt in 1 2; do
    rm -f "$dir"/*.xml
    tests/testbed/run-guest.sh --shape "$shape" --results "$dir" --timeout 1800 --quiet --env HOME=/tmp \
      --env DOTNET_CLI_TELEMETRY_OPTOUT=1 --env DOTNET_NOLOGO=1 --env VFIO_CONFORMANCE_TARGET=kernel \
      -c "$code" >"$dir/console.log" 2>&1
    rc=$?
    # 208: the guest kernel's timers stalled under TCG (an emulator fault, not a test result): boot once more.
    [[ $rc -eq 208 && $attempt -eq 1 ]] || break
    echo "tier $tier: the guest's timers stalled (QEMU TCG); booting it once more: $(grep -m1 FAIL "$dir/console.log")"
    cp -r "$dir/testbed" "$dir/testbed-stalled"
  done
  grep -E '^run-guest.sh: (warning|shape=)' "$dir/console.log" | sed "s/^run-guest.sh:/tier $tier:/"
  if [[ $rc -ne 0 ]]; then
    echo "tier $tier: the guest run exited with $rc (serial log: $dir/testbed/)" >&2
    grep -E '^run-guest.sh: FAIL' "$dir/console.log" >&2
    echo "tier $tier: the last lines the tests printed in the guest:" >&2
    grep -v -E '^\s*$' "$dir/testbed/output.log" 2>/dev/null | tail -n 40 | sed 's/^/  | /' >&2
  fi
  python3 - "$dir" "$@" >"$dir/merged.xml" <<'PY'
import sys, os, xml.etree.ElementTree as ET
out = ET.Element('assemblies')
for project in sys.argv[2:]:
    path = os.path.join(sys.argv[1], os.path.basename(project) + '.xml')
    if os.path.exists(path):
        for a in ET.parse(path).getroot().iter('assembly'):
            out.append(a)
    else:
        ET.SubElement(out, 'assembly', name=project, passed='0', failed='1', skipped='0', errors='0')
print(ET.tostring(out, encoding='unicode'))
PY
  count_tier "$tier" "$dir/merged.xml" $rc
  mode_lines "$tier" "$dir/Vfio.Conformance.xml"
}

# The guest tiers run in the background while the host tiers run: QEMU's TCG emulates both vCPUs on one host thread
# (tests/testbed), so the host tests use the other CPU and the wall time is about the guest tiers' alone. Their lines
# are printed after the host tiers' (in this order), their counts added to the totals.
run_guest_tiers() {
  total_passed=0 total_failed=0 total_skipped=0
  # The conformance cases carry the family of modes they need (Modes=iommu|pci|noiommu|platform|intremap-off|spapr); each
  # boot runs the families its shape provides, so every case runs on the real kernel in exactly the boots that have its
  # devices. Modes=intremap-off needs an IOMMU without interrupt remapping: only the pci-intremap-off boot runs it (the
  # simulator's host-conformance tier runs every case). Modes=spapr (sPAPR TCE) has no guest: simulator only.
  # kernel-pci also runs the short lifecycle stress (StressTests, 5 s a backend) and soak (SoakTests, 60 s in all); the long soak is tests/testbed/soak.sh
  run_guest_tier kernel-pci pci "-trait- Modes=noiommu -trait- Modes=platform -trait- Modes=intremap-off -trait- Modes=spapr" \
    tests/Vfio.Kernel.Tests tests/Vfio.Conformance tests/Vfio.Core.Tests tests/Vfio.Samples.Tests tests/Vfio.Cli.Tests bench/Vfio.Benchmarks
  run_guest_tier kernel-noiommu noiommu "-trait- Modes=iommu -trait- Modes=platform -trait- Modes=intremap-off -trait- Modes=spapr" tests/Vfio.Conformance
  run_guest_tier kernel-platform platform "-trait Modes=platform" tests/Vfio.Conformance
  run_guest_tier kernel-intremap-off pci-intremap-off "-trait Modes=intremap-off" tests/Vfio.Conformance
  echo "$total_passed $total_failed $total_skipped" >"$RESULTS/guest-totals"
}
run_guest_tiers >"$RESULTS/guest-tiers.out" 2>"$RESULTS/guest-tiers.err" &
guest_pid=$!

run_host_tier host-unit tests/Vfio.Core.Tests
run_host_tier host-abi tests/Vfio.Abi.Tests
run_host_tier host-simulator tests/Vfio.Simulator.Tests
run_host_tier host-legacy tests/Vfio.Backends.Legacy.Tests
run_host_tier host-iommufd tests/Vfio.Backends.IommuFd.Tests
run_host_tier host-spapr tests/Vfio.Backends.SpaprTce.Tests   # sPAPR TCE v1/v2, windows, pre-registration, EEH on the simulated POWER host
run_host_tier host-hosting tests/Vfio.DependencyInjection.Tests
run_host_tier host-platform tests/Vfio.Devices.Platform.Tests   # Devices.Platform: EOI state machine (fake clock), platform devices on the simulator
run_host_tier host-pci tests/Vfio.Devices.Pci.Tests             # Devices.Pci: capability walker, BAR decoding, MSI-X holes (pure logic), PCI devices on the simulator
run_host_tier host-conformance tests/Vfio.Conformance   # the conformance suite on the simulator
mode_lines host-conformance "$RESULTS/host-conformance.xml"
run_host_tier host-samples tests/Vfio.Samples.Tests     # the samples on the simulator; README.md's C# blocks
run_host_tier host-cli tests/Vfio.Cli.Tests   # vfioctl in-process on the simulator, and the built tool with --simulate
run_host_tier host-packaging tests/Vfio.Packaging.Tests   # .nupkg metadata, README code built from a local feed, NativeAOT vfioctl demo

# --- The guest tiers' results ----------------------------------------------------------------------------
wait "$guest_pid"
cat "$RESULTS/guest-tiers.out"
cat "$RESULTS/guest-tiers.err" >&2
if read -r gp gf gs 2>/dev/null <"$RESULTS/guest-totals"; then
  total_passed=$((total_passed + gp)); total_failed=$((total_failed + gf)); total_skipped=$((total_skipped + gs))
else
  echo "test.sh: the guest tiers ended without their counts (see $RESULTS/guest-tiers.err)" >&2
  total_failed=$((total_failed + 1))
fi

# --- Summary -------------------------------------------------------------------------------------------------
summary="$total_passed passed, $total_failed failed"
[[ $total_skipped -gt 0 ]] && summary+=", $total_skipped skipped"
echo "$summary"
[[ $total_failed -eq 0 ]]
