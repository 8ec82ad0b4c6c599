#!/usr/bin/env bash
# Builds the ML.NET binding (src/Microsoft.ML.Lora.MLNet) and its examples, and runs its tests against ML.NET 4.x.
#   bash eng/test-mlnet.sh DIR      DIR holds the ML.NET assemblies (Microsoft.ML.Core/Data/DataView/CpuMath.dll
#                                   and their dependencies such as Newtonsoft.Json.dll), e.g. ML.NET built from
#                                   its public source, public-signed with its own public key
#   bash eng/test-mlnet.sh          uses the Microsoft.ML package (needs a feed that has it)
# Extra arguments after DIR go to `dotnet test` (e.g. --filter "FullyQualifiedName~Causal").
# The binding is kept out of Microsoft.ML.Lora.sln because Microsoft.ML is not on every package feed.
set -euo pipefail
cd "$(dirname "$0")/.."
props=()
if [[ $# -gt 0 && "$1" != -* ]]; then
  dir=$(cd "$1" && pwd)
  shift
  for dll in Microsoft.ML.Core Microsoft.ML.Data Microsoft.ML.DataView Microsoft.ML.CpuMath; do
    if [[ ! -f "$dir/$dll.dll" ]]; then
      echo "test-mlnet: $dir has no $dll.dll; expected a folder of ML.NET 4.x assemblies" >&2
      exit 2
    fi
  done
  props=("-p:MLNetAssemblies=$dir")
fi
tests=tests/Microsoft.ML.Lora.MLNet.Tests/Microsoft.ML.Lora.MLNet.Tests.csproj
dotnet build "$tests" -c Release -nologo -v q "${props[@]}"
for example in examples/MLNetTextClassification examples/MLNetCausalLm; do
  dotnet build "$example" -c Release -nologo -v q "${props[@]}"
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test "$tests" -c Release --no-build -nologo -v q --logger "console;verbosity=normal" "${props[@]}" "$@" 2>&1 | tee "$log" || status=$?
sum() { awk -v key="$1:" '$1 == key && NF == 2 && $2 ~ /^[0-9]+$/ { s += $2 } END { print s + 0 }' "$log"; }
echo "mlnet tests: $(sum Passed) passed, $(sum Failed) failed"
exit "$status"
