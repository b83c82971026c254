#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerates PublicAPI.Unshipped.txt of every product project from the build's own RS0016 diagnostics
# (Microsoft.CodeAnalysis.PublicApiAnalyzers): each Unshipped file is reset to "#nullable enable", the solution is
# rebuilt with RS0016/RS0017 as warnings, and every "Symbol '...' is not part of the declared public API" goes, sorted,
# into the Unshipped file of the project that reported it. PublicAPI.Shipped.txt is never touched; a shipped symbol
# that is gone (RS0017) is listed and fails the script, because removing shipped API is a decision, not a refresh.
# Usage: eng/update-public-api.sh [configuration]   (default Release). Review the diff before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONFIGURATION=${1:-Release}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

# Product projects: the .csproj files one folder below the root (Directory.Build.props: not tests/, samples/, bench/).
mapfile -t PROJECTS < <(find . -mindepth 2 -maxdepth 2 -name '*.csproj' | grep -Ev '^\./(tests|samples|bench)/' | sed 's|^\./||' | sort)
for project in "${PROJECTS[@]}"; do
  dir=$(dirname "$project")
  printf '#nullable enable\n' > "$dir/PublicAPI.Unshipped.txt"
  [[ -f "$dir/PublicAPI.Shipped.txt" ]] || printf '#nullable enable\n' > "$dir/PublicAPI.Shipped.txt"
done

# Warnings, not errors, so every project builds and reports; --no-incremental so every analyzer runs.
dotnet build Vfio.slnx -c "$CONFIGURATION" --no-incremental -nologo -v quiet -clp:NoSummary \
  -p:TreatWarningsAsErrors=false -p:WarningsAsErrors= >"$LOG" 2>&1 || {
  grep -E ': error ' "$LOG" | sort -u >&2
  echo "update-public-api.sh: the build failed; fix it first" >&2
  exit 1
}

status=0
for project in "${PROJECTS[@]}"; do
  dir=$(dirname "$project")
  {
    printf '#nullable enable\n'
    grep -F "warning RS0016: Symbol '" "$LOG" | grep -F "[$ROOT/$project]" \
      | sed -E "s/^.*warning RS0016: Symbol '(.*)' is not part of the declared public API.*$/\1/" | LC_ALL=C sort -u \
      || true   # a project without public API (vfioctl) reports nothing
  } > "$dir/PublicAPI.Unshipped.txt"
  echo "$dir/PublicAPI.Unshipped.txt: $(($(wc -l < "$dir/PublicAPI.Unshipped.txt") - 1)) symbols"
  if grep -F "[$ROOT/$project]" "$LOG" | grep -q 'warning RS0017'; then
    grep -F "[$ROOT/$project]" "$LOG" | grep 'warning RS0017' | sed -E 's/^.*warning RS0017: //; s/ \[.*$//' | sort -u >&2
    status=1
  fi
done
[[ $status -eq 0 ]] || echo "update-public-api.sh: shipped API was removed (above); restore it or edit PublicAPI.Shipped.txt deliberately" >&2
exit $status
