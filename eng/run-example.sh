#!/usr/bin/env bash
# The main job on a small built-in example: the real pretrained TinyStories-656K model (models/tinystories-656k)
# learns a new character from a few dozen stories (examples/data/pip-the-penguin.jsonl). It tells its greedy
# story for a prompt, trains a LoRA adapter, tells the story again with the adapter, merges the adapter into the
# base and checks the merged model tells the same story, then trains QLoRA (4-bit NF4 base); then the pipeline
# API fine-tunes a text classifier (examples/TextClassification).
# Outputs go to artifacts/example (recreated on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/Microsoft.ML.Lora.Cli -c Release -nologo -v q >/dev/null
lora=src/Microsoft.ML.Lora.Cli/bin/Release/net10.0/lora
model=models/tinystories-656k
data=examples/data/pip-the-penguin.jsonl
prompt="Once upon a time"
out=artifacts/example
rm -rf "$out"
mkdir -p "$out"
run() { echo "\$ lora $*"; "$lora" "$@"; }
story() { echo "\$ lora generate $* --prompt \"$prompt\""; "$lora" generate "$@" --prompt "$prompt" --max-new-tokens 64 | tee "$out/story.txt"; echo; }
hyper=(--rank 8 --alpha 16 --targets all-linear --lr 5e-3 --epochs 15 --batch-size 4)

echo "# The base model's story"
story --model "$model"
cp "$out/story.txt" "$out/base-story.txt"
run eval --model "$model" --data "$data"
run advise --model "$model" --data "$data"

echo "# LoRA: $(wc -l < "$data") stories about Pip the penguin"
run train --model "$model" --data "$data" --out "$out/adapter" "${hyper[@]}"
run eval --model "$model" --data "$data" --adapter "$out/adapter"
echo "# The adapted story"
story --model "$model" --adapter "$out/adapter"
cp "$out/story.txt" "$out/adapted-story.txt"

echo "# Merge the adapter into the base weights"
run merge --model "$model" --adapter "$out/adapter" --out "$out/merged"
story --model "$out/merged"
cp "$out/story.txt" "$out/merged-story.txt"
if ! cmp -s "$out/adapted-story.txt" "$out/merged-story.txt"; then
  echo "the merged model's story differs from the adapted model's" >&2
  exit 1
fi
if cmp -s "$out/base-story.txt" "$out/adapted-story.txt"; then
  echo "the adapter did not change the story" >&2
  exit 1
fi
echo "(the merged model tells the adapted story)"

echo "# QLoRA: the same training on a 4-bit NF4 base"
run train --model "$model" --data "$data" --out "$out/qlora" --quantize nf4 --double-quant "${hyper[@]}"
story --model "$model" --adapter "$out/qlora" --quantize nf4 --double-quant
rm "$out/story.txt"

# The same library as an estimator/transformer pair: LoRA text classification on a tiny model.
echo "\$ dotnet run --project examples/TextClassification -c Release"
dotnet run --project examples/TextClassification -c Release
