#!/usr/bin/env bash
# The main job on a small built-in example: the real pretrained TinyStories-656K model (models/tinystories-656k)
# learns a new character from a few dozen stories (examples/data/pip-the-penguin.jsonl). It tells its greedy
# story for a prompt, trains a LoRA adapter, tells the story again with the adapter, merges the adapter into the
# base and checks the merged model tells the same story, then trains QLoRA (4-bit NF4 base), exports one ONNX Runtime
# GenAI folder with both adapters as .onnx_adapter files and serves them (examples/OnnxGenAIChat); then the pipeline
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

echo "# Production: one ONNX Runtime GenAI folder (base with adapter inputs), the two adapters as .onnx_adapter files"
run export-onnx --model "$model" --adapter "$out/adapter" --adapters-as-inputs --genai --out "$out/genai"
run export-adapter --model "$model" --adapter "$out/adapter" --out "$out/genai/adapters/pip.onnx_adapter"
run export-adapter --model "$model" --adapter "$out/qlora" --out "$out/genai/adapters/qlora.onnx_adapter"
echo "\$ dotnet run --project examples/OnnxGenAIChat -c Release -- --model $out/genai --adapter pip=... --adapter qlora=..."
dotnet run --project examples/OnnxGenAIChat -c Release -- --model "$out/genai" --prompt "$prompt" --max-new-tokens 48 \
  --adapter pip="$out/genai/adapters/pip.onnx_adapter" --adapter qlora="$out/genai/adapters/qlora.onnx_adapter" | tee "$out/genai-replies.txt"
if ! grep -A1 '^## pip' "$out/genai-replies.txt" | grep -q Pip; then
  echo "the ONNX Runtime GenAI reply with the pip adapter does not mention Pip" >&2
  exit 1
fi

# The same library as an estimator/transformer pair: LoRA text classification on a tiny model.
echo "\$ dotnet run --project examples/TextClassification -c Release"
dotnet run --project examples/TextClassification -c Release
