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
#   7. With --baseline REV: the native engine's frozen pass and LoRA step (r=16) at commit REV and now,
#      interleaved (REV, now, REV, now, …), medians and the ratio now/REV. REV's CLI is built from a git
#      worktree in ${TMPDIR:-/tmp}; e.g. --baseline 4dbd156 is the engine before the backend seam.
# Never fails on time. Usage: eng/bench.sh [--quick] [--baseline REV [--baseline-reps N]] [--baseline-only]
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 baseline="" baseline_reps=5 baseline_only=0
while (($#)); do
  case "$1" in
    --quick) quick=1; shift ;;
    --baseline) baseline=${2:?--baseline needs a commit}; shift 2 ;;
    --baseline-reps) baseline_reps=${2:?--baseline-reps needs a count}; shift 2 ;;
    --baseline-only) baseline_only=1; shift ;;
    *) echo "eng/bench.sh: unknown option $1 (usage: eng/bench.sh [--quick] [--baseline REV [--baseline-reps N]] [--baseline-only])" >&2; exit 2 ;;
  esac
done
((baseline_only == 0 || ${#baseline} > 0)) || { echo "eng/bench.sh: --baseline-only needs --baseline REV" >&2; exit 2; }
threads=$(nproc)
shape=(--layers 8 --hidden 512 --heads 8 --kv-heads 4 --intermediate 1408 --vocab 8192 --seq 256 --batch 4)
steps=5
reps=15
((quick)) && steps=2 && reps=7
lora=src/Microsoft.ML.Lora.Cli/bin/Release/net10.0/lora
# Built for this machine's runtime identifier (ONNX Runtime's natives for one platform only).
benchmarks=(dotnet "bench/Microsoft.ML.Lora.Benchmarks/bin/Release/net10.0/$(dotnet --info | awk '$1 == "RID:" { print $2; exit }')/Microsoft.ML.Lora.Benchmarks.dll")
# tokens/s of a PyTorch line, and of one mode's line in `lora bench` output (its lines start with the mode's name).
tps() { sed -E 's/^tokens\/s=([0-9.]+).*/\1/' <<<"$1"; }
mode_tps() { sed -nE "s/^$1 +tokens\/s=([0-9.]+).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The native engine at another commit against now, interleaved, same shape and threads.
baseline_section() {
  local rev work out
  rev=$(git rev-parse --short "$baseline^{commit}") || { echo "eng/bench.sh: --baseline $baseline is not a commit" >&2; exit 2; }
  work=${TMPDIR:-/tmp}/lora-bench-baseline-$rev
  out="$work/out"
  if [[ ! -x "$out/lora" ]]; then
    rm -rf "$work"
    git worktree prune
    git worktree add --detach -q "$work/src" "$rev"
    dotnet build "$work/src/src/Microsoft.ML.Lora.Cli" -c Release -nologo -v q -o "$out" >/dev/null
    git worktree remove --force "$work/src"
  fi
  echo "== native engine at $rev vs now (frozen pass and LoRA r=16 step; interleaved, median of $baseline_reps): ${shape[*]}"
  local b_f=() b_l=() n_f=() n_l=() r line
  for ((r = 0; r < baseline_reps; r++)); do
    line=$("$out/lora" bench "${shape[@]}" --steps "$steps" --threads "$threads" --rank 16)
    b_f+=("$(mode_tps frozen "$line")"); b_l+=("$(mode_tps 'lora r=16' "$line")")
    line=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads" --rank 16)
    n_f+=("$(mode_tps frozen "$line")"); n_l+=("$(mode_tps 'lora r=16' "$line")")
  done
  local bf bl nf nl
  bf=$(printf '%s\n' "${b_f[@]}" | median); bl=$(printf '%s\n' "${b_l[@]}" | median)
  nf=$(printf '%s\n' "${n_f[@]}" | median); nl=$(printf '%s\n' "${n_l[@]}" | median)
  echo "$rev frozen tokens/s: ${b_f[*]}"
  echo "now frozen tokens/s: ${n_f[*]}"
  echo "$rev lora r=16 tokens/s: ${b_l[*]}"
  echo "now lora r=16 tokens/s: ${n_l[*]}"
  awk -v bf="$bf" -v nf="$nf" -v bl="$bl" -v nl="$nl" -v rev="$rev" \
    'BEGIN { printf "median tokens/s: frozen %s %.1f, now %.1f; lora %s %.1f, now %.1f; ratio now/%s: frozen %.3fx, lora %.3fx\n", rev, bf, nf, rev, bl, nl, rev, nf / bf, nl / bl }'
}

bash eng/install-deps.sh --bench --reference

dotnet build Microsoft.ML.Lora.sln -c Release -nologo -v q >/dev/null
if ((baseline_only)); then baseline_section; exit 0; fi
echo "== GEMM: ours vs OpenBLAS, $threads threads"
"${benchmarks[@]}" gemm --threads "$threads"

echo "== frozen forward+backward: ${shape[*]}"
ours_f32=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads")
ours_bf16=$("$lora" bench "${shape[@]}" --steps "$steps" --threads "$threads" --dtype bf16)
torch=$(/usr/bin/python3 eng/bench_torch.py "${shape[@]}" --steps "$steps" --threads "$threads")
echo "ours f32:  $ours_f32"
echo "ours bf16: $ours_bf16"
echo "pytorch:   $torch"
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
"${benchmarks[@]}" tokenizer
echo "== generation: 64 tokens after a 128-token prompt, greedy, with and without the KV cache"
"$lora" bench "${shape[@]}" --steps 1 --warmup 0 --threads "$threads" --generate 64 | grep '^generate'
echo "== ONNX: export time and size (F32, int4), ONNX Runtime forward tokens/s next to ours (4x256); decode tokens/s of ONNX Runtime GenAI (F32, int4) next to our Generator"
"${benchmarks[@]}" onnx
echo "== pipeline API batching: classification scoring and generation, ratios to batch 1 (same run, interleaved, median of $reps)"
"${benchmarks[@]}" pipeline --threads "$threads" --reps "$reps"
[[ -z "$baseline" ]] || baseline_section
