#!/usr/bin/env bash
# Builds the ML.NET binding (src/Microsoft.ML.Lora.MLNet), its tests and the examples built on it, and runs
# its tests alone (eng/ci.sh runs them with every other test project). Extra arguments go to `dotnet test`,
# e.g. bash eng/test-mlnet.sh --filter "FullyQualifiedName~Regression".
set -euo pipefail
cd "$(dirname "$0")/.."
tests=tests/Microsoft.ML.Lora.MLNet.Tests/Microsoft.ML.Lora.MLNet.Tests.csproj
dotnet build "$tests" -c Release -nologo -v q
for example in examples/TextClassification examples/CausalLmSft; do
  dotnet build "$example" -c Release -nologo -v q
done
dotnet test "$tests" -c Release --no-build -nologo -v q --logger "console;verbosity=normal" "$@"
