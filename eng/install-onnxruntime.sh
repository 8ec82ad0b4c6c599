#!/usr/bin/env bash
# Installs onnxruntime-node (pinned in tests/onnx/package.json and package-lock.json) into
# .deps/onnxruntime/node_modules, for tests/onnx/run.mjs and the OnnxRuntime tests.
# The package ships its prebuilt native binding and libonnxruntime.so.1 under
# bin/napi-v*/linux/x64/; its postinstall (which may download CUDA extras) is skipped
# (ONNXRUNTIME_NODE_INSTALL=skip and --ignore-scripts), so nothing is fetched after npm install.
# Idempotent: returns at once when the pinned version loads. Needs node and npm (the registry only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.deps/onnxruntime"
version=1.30.0
pkg="$prefix/node_modules/onnxruntime-node"

check() {
  # The linux-x64 binding and shared library exist and the package loads from the prefix.
  local arch
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  grep -q "\"version\": \"$version\"" "$pkg/package.json" 2>/dev/null || return 1
  compgen -G "$pkg/bin/napi-v*/linux/$arch/onnxruntime_binding.node" >/dev/null || return 1
  compgen -G "$pkg/bin/napi-v*/linux/$arch/libonnxruntime.so.1" >/dev/null || return 1
  (cd "$prefix" && node -e "const o = require('onnxruntime-node'); if (o.env.versions.node !== '$version') throw new Error('version ' + o.env.versions.node)") >/dev/null 2>&1
}

if check; then
  echo "onnxruntime-node $version present under ${prefix#"$root"/}/node_modules"
  exit 0
fi

command -v node >/dev/null || { echo "install-onnxruntime.sh: node not found (apt-get install nodejs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-onnxruntime.sh: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$prefix"
cp "$root/tests/onnx/package.json" "$root/tests/onnx/package-lock.json" "$prefix/"
(cd "$prefix" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) || {
  echo "install-onnxruntime.sh: npm ci failed in ${prefix#"$root"/}; retrying with output" >&2
  (cd "$prefix" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund) >&2
  exit 1
}
if ! check; then
  echo "install-onnxruntime.sh: onnxruntime-node $version installed but its linux binding or libonnxruntime.so.1 is missing or does not load" >&2
  (cd "$prefix" && node -e "require('onnxruntime-node')") >&2 || true
  exit 1
fi
echo "onnxruntime-node $version installed under ${prefix#"$root"/}/node_modules"
