#!/usr/bin/env bash
# The test command of README.md: restore, build (warnings are errors), run every test project.
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh
dotnet build Microsoft.ML.Lora.sln -c Release -nologo -v q
dotnet test Microsoft.ML.Lora.sln -c Release --no-build -nologo -v q --logger "console;verbosity=normal"
