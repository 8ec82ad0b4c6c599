#!/usr/bin/env bash
# The main job on a tiny built-in example: fine-tune a LoRA adapter on the tiny Llama of tests/fixtures,
# evaluate the model with it, merge it into the base and evaluate the merged model; then the pipeline
# API fine-tunes a text classifier (examples/TextClassification).
# Outputs go to artifacts/example (recreated on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/Microsoft.ML.Lora.Cli -c Release -nologo -v q >/dev/null
lora=src/Microsoft.ML.Lora.Cli/bin/Release/net10.0/lora
model=tests/fixtures/llama_gqa
data=$model/eval.jsonl
out=artifacts/example
rm -rf "$out"
mkdir -p "$out"
run() { echo "\$ lora $*"; "$lora" "$@"; }
run eval --model "$model" --data "$data"
run advise --model "$model" --data "$data"
run train --model "$model" --data "$data" --val-data "$data" --out "$out/adapter" --rank 4 --lr 1e-2 --max-steps 20 --batch-size 2
run eval --model "$model" --data "$data" --adapter "$out/adapter"
run merge --model "$model" --adapter "$out/adapter" --out "$out/merged"
run eval --model "$out/merged" --data "$data"
run train --model "$model" --data "$data" --out "$out/qlora" --quantize nf4 --double-quant --rank 4 --lr 1e-2 --max-steps 20 --batch-size 2
# The same library as an estimator/transformer pair: LoRA text classification on a tiny model.
echo "\$ dotnet run --project examples/TextClassification -c Release"
dotnet run --project examples/TextClassification -c Release
