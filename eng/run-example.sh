#!/usr/bin/env bash
# The main job on a tiny built-in example: evaluate the tiny Llama of tests/fixtures on its JSONL rows,
# in F32 and in BF16.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/Microsoft.ML.Lora.Cli -c Release -nologo -v q
lora=src/Microsoft.ML.Lora.Cli/bin/Release/net10.0/lora
for dtype in f32 bf16; do
  echo "lora eval --model tests/fixtures/llama_gqa --data tests/fixtures/llama_gqa/eval.jsonl --dtype $dtype"
  "$lora" eval --model tests/fixtures/llama_gqa --data tests/fixtures/llama_gqa/eval.jsonl --dtype "$dtype"
done
echo "reference (PyTorch, float64): $(cat tests/fixtures/llama_gqa/expected_eval.json)"
