#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Hot-path benchmarks of issue 11 against C baselines in the same process (bench/Vfio.Benchmarks; C in bench/native):
# the host goals H1-H5, then the guest goals G1, G2, G3, G6 and G7 in one boot of the testbed's QEMU guest (pci shape,
# tests/testbed; GuestGoals.cs) and, in the same boot, N1 (issue 12): samples/Nvme's 4 KiB random read IOPS at queue
# depth 1 and 32 against the guest kernel's nvme driver on the same device (NvmeGoals.cs, bench/native/nvmeread.c). Prints one line per goal, e.g. "H1-read ratio=1.02 goal<=1.05|+0.3ns ok".
#   ./bench.sh           full run (BenchmarkDotNet, in process, with the JIT's disassembly of H1; the guest's rounds);
#                        rewrites docs/performance.md with the table and the machine and kernel it ran on
#   ./bench.sh --quick   short in-process job and fewer guest rounds, under 5 minutes; prints the goal lines, writes no docs
#   ./bench.sh --smoke   no timing, host only: C and the library compute the same results and allocate nothing (test.sh
#                        runs it; its kernel-pci tier runs the guest's smoke pass, --guest-goals --smoke)
# Needs gcc; the guest part needs the prepared testbed (tests/testbed/prepare.sh) and waits for its lock
# (/tmp/vfio-testbed.lock: one guest at a time). Numbers depend on the machine's load; a missed goal is reported, never
# a failure.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
MODE=full
case "${1:-}" in
  "") ;;
  --quick) MODE=quick ;;
  --smoke) MODE=smoke ;;
  *) echo "usage: ./bench.sh [--quick|--smoke]" >&2; exit 2 ;;
esac
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

OUT="$ROOT/artifacts/bench"
mkdir -p "$OUT"
command -v gcc >/dev/null || { echo "bench.sh: gcc is needed for the C baselines (apt-get install gcc)" >&2; exit 1; }
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$OUT/libvfiobench.so" bench/native/vfiobench.c
# N1's kernel side runs in the guest: static, so it needs nothing of the guest's userland.
gcc -O2 -Wall -Wextra -Werror -static -o "$OUT/nvmeread" bench/native/nvmeread.c
export VFIO_BENCH_NATIVE="$OUT/libvfiobench.so"

dotnet build bench/Vfio.Benchmarks/Vfio.Benchmarks.csproj -c Release -v quiet -nologo -clp:ErrorsOnly >/dev/null
BIN="$ROOT/bench/Vfio.Benchmarks/bin/Release/net10.0/Vfio.Benchmarks.dll"
case $MODE in
  smoke) exec dotnet "$BIN" --hotpath-smoke ;;
  quick) ARGS=(--hotpath-goals --quick) ;;
  full) ARGS=(--hotpath-goals --docs "$ROOT/docs/performance.md") ;;
esac
LOG="$OUT/bench-$MODE.log"
# BenchmarkDotNet's progress goes to the log; the goal lines (and "wrote ...") to the terminal.
rm -rf "${OUT:?}/$MODE" && mkdir -p "$OUT/$MODE"

# The guest goals first (their rows go into the host run's docs/performance.md). The guest sees this build read-only
# through its host-root share and writes to the results share.
GUEST="$OUT/$MODE/guest"
mkdir -p "$GUEST"
# Both guest harnesses take these; N1 appends its rows to the G rows' file.
GUEST_ARGS=(--rows /run/results/guest-rows.md)
[[ $MODE == quick ]] && GUEST_ARGS+=(--quick)
# no_timer_check: on a loaded host the TCG guest's early timer check can fail and panic the boot ("timer doesn't work
# through Interrupt-remapped IO-APIC"); a boot that still panics (202) or stalls (208) is booted once more.
guest_rc=0
for attempt in 1 2; do
  guest_rc=0
  flock /tmp/vfio-testbed.lock tests/testbed/run-guest.sh --shape pci --results "$GUEST" --timeout 1200 --quiet \
    --append no_timer_check --env HOME=/tmp --env DOTNET_CLI_TELEMETRY_OPTOUT=1 --env DOTNET_NOLOGO=1 --env VFIO_BENCH_NATIVE \
    --env NVMEREAD="$OUT/nvmeread" \
    -- bash -c 'bin=$1; shift; dotnet "$bin" --guest-goals "$@"; g=$?; dotnet "$bin" --nvme-goals --reader "$NVMEREAD" "$@"; n=$?; exit $((g ? g : n))' \
    guest-goals "$BIN" "${GUEST_ARGS[@]}" >"$OUT/guest-$MODE.log" 2>&1 || guest_rc=$?
  [[ $guest_rc -eq 202 || $guest_rc -eq 208 ]] || break
done
if [[ $guest_rc -eq 0 ]]; then
  grep -E '^(G[0-9]|N1-)' "$GUEST/testbed/output.log" || true
else
  echo "guest goals: the guest run failed (exit $guest_rc; $OUT/guest-$MODE.log, $GUEST/testbed/output.log):" >&2
  tail -20 "$GUEST/testbed/output.log" >&2 || true
fi
[[ -s "$GUEST/guest-rows.md" ]] && ARGS+=(--guest-rows "$GUEST/guest-rows.md")
if [[ $MODE == full ]]; then
  # The JIT's own listing of the H1 loops (no disassembler needed, and it shows the tier that ran).
  export DOTNET_JitDisasm="Window_Read32 Window_Write32 Raw_Read32" DOTNET_JitStdOutFile="$OUT/$MODE/jit-asm.txt"
fi
(cd "$OUT" && dotnet "$BIN" "${ARGS[@]}" --artifacts "$OUT/$MODE") >"$LOG" 2>&1 || { tail -40 "$LOG" >&2; exit 1; }
grep -E '^(H[0-9]-|wrote |not writing )' "$LOG"
echo "(full log: $LOG)"
