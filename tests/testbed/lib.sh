# Shared by prepare.sh, run-guest.sh and selftest.sh (sourced, not run).
# shellcheck shell=bash

TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTBED_CACHE=${VFIO_TESTBED_CACHE:-/var/cache/vfio-dotnet/testbed}
TESTBED_FRAGMENT=$TESTBED_DIR/kernel.fragment
TESTBED_INIT=$TESTBED_DIR/init
# Written by prepare.sh, read by run-guest.sh: KERNEL=, INITRD=, QEMU=, and the keys they were built for.
TESTBED_ENV=$TESTBED_CACHE/testbed.env

tb_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
tb_die() { printf '%s: ERROR: %s\n' "${0##*/}" "$*" >&2; exit "${TB_DIE_CODE:-1}"; }

tb_sha256() { sha256sum "$1" | cut -c1-64; }

# Seconds since the epoch with milliseconds, and a difference of two of them.
tb_now() { date +%s.%N | cut -c1-14; }
tb_elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
