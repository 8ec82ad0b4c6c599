#!/usr/bin/env bash
# The test command of README.md: restore, build (warnings are errors), run every test project,
# then print one closing line "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh
dotnet build Microsoft.ML.Lora.sln -c Release -nologo -v q
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test Microsoft.ML.Lora.sln -c Release --no-build -nologo -v q --logger "console;verbosity=normal" 2>&1 | tee "$log" || status=$?
# Each test project prints its own summary; add them up.
sum() { awk -v key="$1:" '$1 == key && NF == 2 && $2 ~ /^[0-9]+$/ { s += $2 } END { print s + 0 }' "$log"; }
passed=$(sum Passed)
failed=$(sum Failed)
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
