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
passed=$(grep -E '^\s+Passed: [0-9]+$' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
failed=$(grep -E '^\s+Failed: [0-9]+$' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
