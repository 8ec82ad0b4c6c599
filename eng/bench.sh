#!/usr/bin/env bash
# Benchmarks, all measured in this one run on this machine (absolute times on shared machines mean
# little; the ratios are the result):
#   1. GEMM GFLOP/s of the model's shapes against OpenBLAS cblas_sgemm (same threads).
#   2. `lora bench` frozen forward+backward tokens/s against the same work in PyTorch (Debian, OpenBLAS).
#   3. The LoRA (r=16) and QLoRA (NF4, double quantization) steps against the frozen pass, interleaved,
#      and QLoRA's peak tensor memory against LoRA over F32 weights on a wider model (hidden 2048).
#      The same LoRA step on the torch backend (libtorch through TorchSharp, CPU; F32 and BF16 compute)
#      next to the native engine and PyTorch.
#   4. Tokenizer MB/s on real tokenizer.json files, and generation tokens/s with and without the KV cache.
#   5. ONNX export time and size, and ONNX Runtime forward tokens/s next to our engine.
#   6. The pipeline API's batching: PredictScores rows/s at PredictionBatchSize 1, 8, 32 and Generate
#      tokens/s at GenerationBatchSize 1 and 8, interleaved, as ratios to batch 1 (small random Llama).
# Never fails on time. Usage: eng/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh --bench --reference
threads=$(nproc)
shape=(--layers 8 --hidden 512 --heads 8 --kv-heads 4 --intermediate 1408 --vocab 8192 --seq 256 --batch 4)
steps=5
reps=15
[ "${1:-}" = "--quick" ] && steps=2 && reps=7

dotnet build Microsoft.ML.Lora.sln -c Release -nologo -v q >/dev/null
echo "== GEMM: ours vs OpenBLAS, $threads threads"
dotnet bench/Microsoft.ML.Lora.Benchmarks/bin/Release/net10.0/Microsoft.ML.Lora.Benchmarks.dll gemm --threads "$threads"

echo "== frozen forward+backward: ${shape[*]}"
lora=src/Microsoft.ML.Lora.Cli/bin/Release/net10.0/lora
ours_f32=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads")
ours_bf16=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads" --dtype bf16)
torch=$(/usr/bin/python3 eng/bench_torch.py "${shape[@]}" --steps "$steps" --threads "$threads")
echo "ours f32:  $ours_f32"
echo "ours bf16: $ours_bf16"
echo "pytorch:   $torch"
# tokens/s of a PyTorch line, and of one mode's line in `lora bench` output (its lines start with the mode's name).
tps() { sed -E 's/^tokens\/s=([0-9.]+).*/\1/' <<<"$1"; }
mode_tps() { sed -nE "s/^$1 +tokens\/s=([0-9.]+).*/\1/p" <<<"$2"; }
awk -v a="$(mode_tps frozen "$ours_f32")" -v b="$(mode_tps frozen "$ours_bf16")" -v t="$(tps "$torch")" \
  'BEGIN { printf "ratio ours/pytorch: f32 %.2fx, bf16 %.2fx\n", a / t, b / t }'

echo "== LoRA and QLoRA steps against the frozen pass (same run): ${shape[*]} --rank 16"
steps_out=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads" --rank 16 --quantize nf4 --double-quant)
echo "$steps_out"
echo "== LoRA step (r=16) on the torch backend (libtorch CPU, F32 and BF16 compute) beside the native engine and PyTorch: ${shape[*]}"
lora_native=$(grep '^lora ' <<<"$steps_out")
lora_torch_f32=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads" --rank 16 --backend torch | grep '^lora ')
lora_torch_bf16=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads" --rank 16 --backend torch --bf16-compute | grep '^lora ')
lora_pytorch=$(/usr/bin/python3 eng/bench_torch.py "${shape[@]}" --steps "$steps" --threads "$threads" --rank 16)
echo "native engine:      $lora_native"
echo "torch backend f32:  $lora_torch_f32"
echo "torch backend bf16: $lora_torch_bf16"
echo "pytorch:            $lora_pytorch"
awk -v n="$(mode_tps 'lora r=16' "$lora_native")" -v f="$(mode_tps 'lora r=16' "$lora_torch_f32")" \
    -v h="$(mode_tps 'lora r=16' "$lora_torch_bf16")" -v p="$(tps "$lora_pytorch")" \
  'BEGIN { printf "ratio torch-backend/native: f32 %.2fx, bf16 %.2fx; ratio to pytorch: native %.2fx, torch-backend f32 %.2fx, bf16 %.2fx\n", f / n, h / n, n / p, f / p, h / p }'
echo "== peak memory, QLoRA vs LoRA over F32 weights, weight-dominated shape (4 layers of TinyLlama's width), gradient checkpointing"
"$lora" bench --layers 4 --hidden 2048 --heads 32 --kv-heads 4 --intermediate 5632 --vocab 32000 --seq 256 --batch 1 \
  --steps 2 --threads "$threads" --rank 16 --quantize nf4 --double-quant --recompute

echo "== tokenizer throughput (single thread, real tokenizer.json files)"
dotnet bench/Microsoft.ML.Lora.Benchmarks/bin/Release/net10.0/Microsoft.ML.Lora.Benchmarks.dll tokenizer
echo "== generation: 64 tokens after a 128-token prompt, greedy, with and without the KV cache"
"$lora" bench "${shape[@]}" --steps 1 --warmup 0 --threads "$threads" --generate 64 | grep '^generate'
echo "== ONNX: export time and size (F32, int4), ONNX Runtime forward tokens/s next to ours (4x256)"
dotnet bench/Microsoft.ML.Lora.Benchmarks/bin/Release/net10.0/Microsoft.ML.Lora.Benchmarks.dll onnx
echo "== pipeline API batching: classification scoring and generation, ratios to batch 1 (same run, interleaved, median of $reps)"
dotnet bench/Microsoft.ML.Lora.Benchmarks/bin/Release/net10.0/Microsoft.ML.Lora.Benchmarks.dll pipeline --threads "$threads" --reps "$reps"
