#!/usr/bin/env bash
# The GPU check in one script (docs/gpu.md): the torch backend's golden tests on CUDA, then a LoRA / LoRA with
# gradient checkpointing / QLoRA training-step benchmark beside PyTorch + PEFT on the same GPU, as one table.
#
#   eng/gpu-check.sh prepare [--torchsharp-src DIR]
#       Here, with .NET: publishes lora-gpu-check (eng/gpu/check) self-contained and trimmed for linux-x64 into
#       artifacts/gpu/app (~34 MB: what the device tool carries), and with --torchsharp-src copies TorchSharp
#       0.107.0's native sources (a TorchSharp work tree or git directory) into artifacts/gpu/libtorchsharp-src,
#       for route b below. Nothing of TorchSharp's source is committed here.
#   eng/gpu-check.sh [run] [--device cpu|cuda|cuda:N] [--shape small|llama-1b] [--modes lora,lora-ckpt,qlora]
#                          [--batch N] [--seq N] [--steps N] [--warmup N] [--rank N] [--route auto|a|b]
#                          [--budget SECONDS] [--skip-golden] [--skip-bench]
#       Environment: PYTHON (default python3), LORA_LIBTORCH_DIR (a libtorch lib folder instead of PyTorch's),
#       LORA_TORCH_INCLUDE and LORA_TORCH_CXX11_ABI (route b's headers and ABI instead of PyTorch's), CXX, CC.
#       Where the check runs; needs no .NET. Device: cuda:0 when PyTorch sees a GPU, else cpu (then the small
#       shape, and the PEFT side only if torch, transformers and peft import). Budget: the whole run's seconds
#       (default 400); each stage gets a time limit from what is left.
#
# Native libraries: the publish carries TorchSharp's managed code and its shim libLibTorchSharp.so (built by
# TorchSharp against libtorch 2.10), not libtorch. Route a loads the machine's own libtorch (PyTorch's torch/lib)
# through LD_LIBRARY_PATH under the packaged shim; it is taken when every symbol the shim imports resolves there
# (ldd -r) and the probe (a tiny LoRA and QLoRA step, native CPU vs torch device) agrees. Route b compiles the shim
# from TorchSharp's sources against the machine's torch headers (g++; translation units that do not compile are
# left out and named) and probes again. A route whose probe passed but with unresolved symbols is used last, with
# a warning. Without any, the .NET parts are skipped and said so; the PEFT side still runs.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
art="$root/artifacts/gpu"
app="$art/app"
src_copy="$art/libtorchsharp-src"
py=${PYTHON:-python3}

die() { echo "gpu-check: $*" >&2; exit 2; }

# ---- prepare (here, with .NET) ---------------------------------------------------------------------------------
prepare() {
  local ts_src=""
  while (($#)); do
    case "$1" in
      --torchsharp-src) ts_src=${2:?--torchsharp-src needs a folder}; shift 2 ;;
      *) die "prepare: unknown option $1" ;;
    esac
  done
  command -v dotnet >/dev/null || die "prepare needs the .NET SDK (dotnet); run it where the repository builds"
  rm -rf "$app"
  dotnet publish "$root/eng/gpu/check/Microsoft.ML.Lora.GpuCheck.csproj" -c Release -r linux-x64 --self-contained \
    -p:LoraGpuTrim=true -o "$app" -nologo -v q || die "dotnet publish failed"
  rm -f "$app"/*.xml
  rm -rf "$art/app-built"  # route b's copy, made where the check runs; never carried from here
  if [[ -n "$ts_src" ]]; then
    rm -rf "$src_copy"
    mkdir -p "$src_copy"
    if [[ -d "$ts_src/src/Native/LibTorchSharp" ]]; then
      mkdir -p "$src_copy/src" "$src_copy/build"
      cp -r "$ts_src/src/Native" "$src_copy/src/" && cp "$ts_src/build/BranchInfo.props" "$src_copy/build/" || die "copying from $ts_src failed"
      commit=$(git -C "$ts_src" rev-parse HEAD 2>/dev/null || echo unknown)
    elif git --git-dir="$ts_src" rev-parse HEAD >/dev/null 2>&1; then
      git --git-dir="$ts_src" archive HEAD src/Native build/BranchInfo.props | tar -x -C "$src_copy" || die "git archive of $ts_src failed"
      commit=$(git --git-dir="$ts_src" rev-parse HEAD)
    else
      die "--torchsharp-src $ts_src: neither a TorchSharp work tree (src/Native/LibTorchSharp) nor its git directory"
    fi
    # The shim must export what TorchSharp.dll 0.107.0 calls: refuse sources of another version.
    version=$(sed -n 's:.*<\(Major\|Minor\|Patch\)Version>\([0-9]*\)<.*:\2:p' "$src_copy/build/BranchInfo.props" | paste -sd.)
    [[ "$version" == "0.107.0" ]] || { rm -rf "$src_copy"; die "--torchsharp-src: its build/BranchInfo.props says $version; the package here is TorchSharp 0.107.0"; }
    echo "TorchSharp $version sources, commit $commit, from $ts_src (MIT licence; not part of this repository)" > "$src_copy/SOURCE"
  fi
  local tracked untracked carried
  tracked=$(git -C "$root" ls-files -z | (cd "$root" && xargs -0 du -cb 2>/dev/null) | awk 'END { print $1 }')
  untracked=$(git -C "$root" ls-files -z --others --exclude-standard | (cd "$root" && xargs -0 -r du -cb 2>/dev/null) | awk 'END { print $1 + 0 }')
  carried=$(du -sb "$art" | awk '{ print $1 }')
  echo "prepared: artifacts/gpu = $((carried / 1048576)) MiB (app $(du -sb "$app" | awk '{ printf "%d", $1 / 1048576 }') MiB$([[ -d "$src_copy" ]] && echo ", TorchSharp native sources $(du -sb "$src_copy" | awk '{ printf "%.1f", $1 / 1048576 }') MiB"))"
  echo "what travels: working tree $(((tracked + untracked) / 1048576)) MiB + artifacts/gpu $((carried / 1048576)) MiB = $(((tracked + untracked + carried) / 1048576)) MiB of the 64 MiB limit"
  ((tracked + untracked + carried < 60 * 1048576)) || echo "warning: close to or over the device tool's 64 MiB limit"
  echo "next, on the GPU machine (device tool): command 'bash eng/gpu-check.sh', carry [\"artifacts/gpu\"], timeout_s 600 (docs/gpu.md)"
}

# ---- run (where the check runs; no .NET) -----------------------------------------------------------------------
device="" shape="" modes="lora,lora-ckpt,qlora" route_wanted=auto budget=400 skip_golden=0 skip_bench=0
batch="" seq="" steps="" warmup="" rank=16

left() { echo $((budget - SECONDS)); }
# limit SECONDS_WANTED RESERVE: seconds a stage may take, leaving RESERVE for what follows.
limit() { local l=$(($(left) - $2)); ((l > $1)) && l=$1; ((l < 10)) && l=10; echo "$l"; }
stage() { echo; echo "== $* ($(left) s of the budget left)"; }

parse_run() {
  while (($#)); do
    case "$1" in
      --device) device=$2; shift 2 ;;
      --shape) shape=$2; shift 2 ;;
      --modes) modes=$2; shift 2 ;;
      --batch) batch=$2; shift 2 ;;
      --seq) seq=$2; shift 2 ;;
      --steps) steps=$2; shift 2 ;;
      --warmup) warmup=$2; shift 2 ;;
      --rank) rank=$2; shift 2 ;;
      --route) route_wanted=$2; shift 2 ;;
      --budget) budget=$2; shift 2 ;;
      --skip-golden) skip_golden=1; shift ;;
      --skip-bench) skip_bench=1; shift ;;
      *) die "unknown option $1 (see the top of eng/gpu-check.sh)" ;;
    esac
  done
  [[ "$route_wanted" =~ ^(auto|a|b)$ ]] || die "--route takes auto, a or b"
}

# Prints what PyTorch says about itself as key=value lines, nothing when it does not import.
torch_facts() {
  "$py" - <<'EOF' 2>/dev/null
import os, torch
d = os.path.dirname(torch.__file__)
print(f"version={torch.__version__}")
print(f"cuda={torch.version.cuda or 'none'}")
print(f"available={int(torch.cuda.is_available())}")
print(f"lib={os.path.join(d, 'lib')}")
print(f"include={os.path.join(d, 'include')}")
print(f"abi={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
print(f"site={os.path.dirname(d)}")
print(f"gpu={torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
EOF
}
fact() { sed -n "s/^$1=//p" <<<"$facts" | head -1; }

# Counts the shim's imports that do not resolve against LD_LIBRARY_PATH; prints the first few, demangled.
unresolved() {
  local shim=$1 out
  out=$(ldd -r "$shim" 2>&1 | grep 'undefined symbol' || true)
  if [[ -z "$out" ]]; then echo "  ldd -r $shim: every imported symbol resolves"; return 0; fi
  echo "  ldd -r $shim: $(wc -l <<<"$out") imported symbols do not resolve, e.g.:"
  sed -n 's/.*undefined symbol: \([^ ]*\).*/\1/p' <<<"$out" | head -8 | (c++filt 2>/dev/null || cat) | sed 's/^/    /' | cut -c1-200
  return 1
}

probe() { # APP_DIR -> 0 when the probe passes
  echo "  probe: $1/lora-gpu-check probe --device $device"
  NUGET_PACKAGES=/nonexistent timeout -k 10 "$(limit 90 60)" "$1/lora-gpu-check" probe --device "$device" 2>&1 | tail -n 25 | sed 's/^/    /'
  return "${PIPESTATUS[0]}"
}

# Route b: compile TorchSharp's shim against the machine's torch headers into $work/shim, then an app copy using it.
build_shim() {
  local native="$src_copy/src/Native" inc obj cxx=${CXX:-g++} cc=${CC:-gcc} abi ok=() bad=()
  inc=${LORA_TORCH_INCLUDE:-$(fact include)}
  [[ -d "$native/LibTorchSharp" ]] || { echo "  route b: no sources (prepare with --torchsharp-src to carry them)"; return 1; }
  command -v "$cxx" >/dev/null || { echo "  route b: no C++ compiler ($cxx)"; return 1; }
  [[ -f "$inc/torch/csrc/api/include/torch/torch.h" ]] || { echo "  route b: no libtorch headers under $inc"; return 1; }
  abi=${LORA_TORCH_CXX11_ABI:-$(fact abi)}
  abi=${abi:-1}
  obj="$work/shim/obj"
  rm -rf "$work/shim"; mkdir -p "$obj"
  echo "  route b: compiling $(ls "$native"/LibTorchSharp/*.c* | wc -l) translation units with $cxx (ABI $abi), $(nproc) at a time, limit $(limit 240 150) s"
  export cxx cc obj abi inc native
  # shellcheck disable=SC2016
  ls "$native"/LibTorchSharp/*.cpp "$native"/LibTorchSharp/*.c | timeout -k 5 "$(limit 240 150)" xargs -P "$(nproc)" -I{} bash -c '
    f={}; n=$(basename "$f"); n=${n%.*}
    if [[ $f == *.c ]]; then "$cc" -O2 -fPIC -msse4.2 -c "$f" -o "$obj/$n.o" 2>"$obj/$n.log"
    else
      # C++17 as TorchSharp builds it; C++20 again where newer torch headers ask for it.
      for std in c++17 c++20; do
        "$cxx" -std=$std -O1 -fPIC -w -D_GLIBCXX_USE_CXX11_ABI=$abi -I"$native" -I"$native/LibTorchSharp" -I"$inc" -I"$inc/torch/csrc/api/include" \
          -c "$f" -o "$obj/$n.o" 2>"$obj/$n.log" && break
      done
    fi || rm -f "$obj/$n.o"'
  for f in "$native"/LibTorchSharp/*.cpp "$native"/LibTorchSharp/*.c; do
    n=$(basename "$f"); n=${n%.*}
    if [[ -f "$obj/$n.o" ]]; then ok+=("$n"); else bad+=("$n"); fi
  done
  echo "  route b: ${#ok[@]} compiled, ${#bad[@]} left out${bad:+: ${bad[*]}}"
  for n in "${bad[@]}"; do grep -m 1 -E 'error' "$obj/$n.log" 2>/dev/null | cut -c1-220 | sed "s/^/    $n: /"; done
  # The engine calls into these (tensors, math, autograd, attention in THSNN); the others (JIT, export, vision,
  # data sets…) it does not.
  for n in THSTorch THSTensor THSTensorFactories THSTensorMath THSAutograd THSNN Utils; do
    [[ -f "$obj/$n.o" ]] || { echo "  route b: $n did not compile, and the backend needs it"; return 1; }
  done
  "$cxx" -shared -o "$work/shim/libLibTorchSharp.so" "$obj"/*.o -Wl,-soname,libLibTorchSharp.so -Wl,--no-as-needed \
    -L"$libtorch" -ltorch -ltorch_cpu -lc10 -Wl,-rpath,"$libtorch" 2>"$work/shim/link.log" \
    || { echo "  route b: link failed:"; head -5 "$work/shim/link.log" | sed 's/^/    /'; return 1; }
  # The app must sit under the repository (the golden tests find tests/fixtures above it).
  rm -rf "$art/app-built"; cp -r "$app" "$art/app-built" && cp "$work/shim/libLibTorchSharp.so" "$art/app-built/"
  echo "  route b: built $work/shim/libLibTorchSharp.so, in a copy of the app at artifacts/gpu/app-built"
}

choose_route() {
  route="none"; run_app=""
  local a_probe=1 a_clean=1
  if [[ "$route_wanted" != b ]]; then
    echo "route a: the packaged shim (built against libtorch 2.10) over this machine's libtorch ($libtorch_what)"
    unresolved "$app/libLibTorchSharp.so" && a_clean=0
    probe "$app" && a_probe=0
    if ((a_clean == 0 && a_probe == 0)); then route="a"; run_app="$app"; return; fi
    echo "route a: $( ((a_probe == 0)) && echo "probe passed but imports are unresolved (they fail only when called)" || echo "probe failed")"
  fi
  if [[ "$route_wanted" != a ]]; then
    if build_shim; then
      unresolved "$art/app-built/libLibTorchSharp.so"
      if probe "$art/app-built"; then route="b"; run_app="$art/app-built"; return; fi
      echo "route b: probe failed"
    fi
  fi
  if ((a_probe == 0)); then
    route="a (with unresolved imports)"; run_app="$app"
    echo "warning: using route a although some imports do not resolve: a call that needs one ends the process ('symbol lookup error')"
  fi
}

run() {
  parse_run "$@"
  # A copy that lost its mode bits on the way still runs.
  [[ -f "$app/lora-gpu-check" && ! -x "$app/lora-gpu-check" ]] && chmod +x "$app/lora-gpu-check"
  [[ -x "$app/lora-gpu-check" ]] || die "artifacts/gpu/app/lora-gpu-check is missing: run 'eng/gpu-check.sh prepare' first where .NET is (and carry artifacts/gpu)"
  work=${TMPDIR:-/tmp}/lora-gpu-check
  mkdir -p "$work"
  if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then exec > >(tee -a "$OUT/gpu-check.log") 2>&1; fi

  stage "machine"
  echo "host: $(uname -srm), $(nproc) cores; glibc $(ldd --version 2>/dev/null | head -1 | awk '{ print $NF }'); libstdc++ $(strings "$(ldconfig -p | awk '/libstdc\+\+\.so\.6 / { print $NF; exit }')" 2>/dev/null | grep -o '^GLIBCXX_3\.4\.[0-9]*' | sort -V | tail -1)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
  facts=$(torch_facts)
  if [[ -n "$facts" ]]; then
    echo "python torch: $(fact version) (CUDA $(fact cuda), GPU visible: $(fact available) $(fact gpu)); lib $(fact lib)"
  else
    echo "python torch: not importable with $py"
  fi
  "$py" -c 'import importlib
for m in ("transformers", "peft", "bitsandbytes"):
    try: print(f"{m}: {importlib.import_module(m).__version__}")
    except Exception as e: print(f"{m}: not available ({type(e).__name__})")' 2>/dev/null || echo "python: $py not found"

  if [[ -z "$device" ]]; then device=$([[ "$(fact available)" == 1 ]] && echo cuda:0 || echo cpu); fi
  if [[ -z "$shape" ]]; then shape=$([[ "$device" == cuda* ]] && echo llama-1b || echo small); fi
  case "$shape" in
    llama-1b) dims=(--layers 16 --hidden 2048 --heads 32 --kv-heads 8 --intermediate 8192 --vocab 128256); : "${batch:=4}" "${seq:=1024}" "${steps:=5}" "${warmup:=2}" ;;
    small) dims=(--layers 2 --hidden 256 --heads 4 --kv-heads 2 --intermediate 688 --vocab 4096); : "${batch:=2}" "${seq:=128}" "${steps:=3}" "${warmup:=1}" ;;
    *) die "--shape takes small or llama-1b" ;;
  esac
  echo "device: $device; shape: $shape (${dims[*]}), batch $batch, seq $seq, $warmup warmup + $steps timed steps, LoRA r=$rank; modes $modes"
  [[ "$device" == cuda* ]] || echo "note: no CUDA device in use: the CUDA parts (golden tests on CUDA, GPU benchmark) are not run; this is the CPU path on a small shape"

  stage "native libraries"
  # Candidates in order: LORA_LIBTORCH_DIR, PyTorch's torch/lib, and (CPU only) the NuGet cache's libtorch-cpu,
  # which is what the shim was built against; the first whose route probes well is used.
  local candidates=() whats=() nv="" c
  [[ -n "${LORA_LIBTORCH_DIR:-}" ]] && candidates+=("$LORA_LIBTORCH_DIR") && whats+=("LORA_LIBTORCH_DIR")
  [[ -n "$facts" && -f "$(fact lib)/libtorch_cpu.so" ]] && candidates+=("$(fact lib)") && whats+=("PyTorch $(fact version)")
  if [[ "$device" == cpu ]]; then
    c=$(ls -d "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/libtorch-cpu-linux-x64/*/runtimes/linux-x64/native 2>/dev/null | sort -V | tail -1)
    [[ -n "$c" ]] && candidates+=("$c") && whats+=("the NuGet cache's libtorch-cpu-linux-x64, CPU only")
  fi
  [[ -n "$facts" ]] && nv=$(ls -d "$(fact site)"/nvidia/*/lib "$(fact site)"/nvidia/cu*/lib 2>/dev/null | paste -sd:)
  route="none"; run_app=""
  local base_path=${LD_LIBRARY_PATH:-} i
  for i in "${!candidates[@]}"; do
    libtorch=${candidates[$i]} libtorch_what=${whats[$i]}
    if [[ ! -f "$libtorch/libtorch_cpu.so" ]]; then echo "libtorch: $libtorch ($libtorch_what) has no libtorch_cpu.so"; continue; fi
    echo "libtorch: $libtorch ($libtorch_what)"
    export LD_LIBRARY_PATH="$libtorch${nv:+:$nv}${base_path:+:$base_path}"
    choose_route
    [[ "$route" == none ]] || break
  done
  ((${#candidates[@]})) || echo "no libtorch found (LORA_LIBTORCH_DIR, PyTorch's torch/lib, or on cpu the NuGet cache): the .NET parts cannot run"
  echo "natives: route $route${run_app:+ (app: ${run_app#"$root"/})}"

  local golden="not run" status=0
  if ((skip_golden)); then golden="skipped (--skip-golden)"
  elif [[ -n "$run_app" ]]; then
    stage "golden tests on $device (the torch backend's, against tests/fixtures)"
    NUGET_PACKAGES=/nonexistent timeout -k 10 "$(limit 120 200)" "$run_app/lora-gpu-check" golden --device "$device" 2>&1 | tee "$work/golden.log"
    ((PIPESTATUS[0] == 0)) || status=1
    golden=$(sed -n 's/^golden: //p' "$work/golden.log" | tail -1)
    [[ -n "$golden" ]] || golden="did not finish (see above)"
  else
    golden="not run: no native library route"; status=1
  fi

  if ((!skip_bench)); then
    stage "benchmark: training steps, .NET torch backend vs PyTorch + PEFT on $device"
    : >"$work/bench.log"
    local model="$work/model-$shape"
    if [[ ! -f "$model/config.json" ]]; then
      timeout -k 5 "$(limit 60 150)" "$app/lora-gpu-check" make-model --dir "$model" "${dims[@]}" || rm -rf "$model"
    fi
    IFS=, read -r -a mode_list <<<"$modes"
    if [[ ! -f "$model/config.json" ]]; then
      echo "skip impl=all mode=all reason=\"the random model could not be written\"" | tee -a "$work/bench.log"
    else
      for m in "${mode_list[@]}"; do
        if [[ -z "$run_app" ]]; then echo "skip impl=dotnet-torch mode=$m reason=\"no native library route\"" >>"$work/bench.log"; continue; fi
        echo "dotnet $m ..."
        NUGET_PACKAGES=/nonexistent timeout -k 10 "$(limit 100 80)" "$run_app/lora-gpu-check" bench --device "$device" --mode "$m" --model "$model" \
          --batch "$batch" --seq "$seq" --steps "$steps" --warmup "$warmup" --rank "$rank" 2>&1 | tee -a "$work/bench.log" | grep -v '^result ' | tail -n 15
        rc=${PIPESTATUS[0]}
        ((rc == 0)) || echo "skip impl=dotnet-torch mode=$m reason=\"exit $rc$( ((rc == 124)) && echo ': time limit')\"" >>"$work/bench.log"
      done
      echo "peft ..."
      PYTHONUNBUFFERED=1 timeout -k 10 "$(limit 200 10)" "$py" "$root/eng/gpu/bench_peft.py" --model "$model" --device "$device" --modes "$modes" \
        --batch "$batch" --seq "$seq" --steps "$steps" --warmup "$warmup" --rank "$rank" 2>&1 | tee -a "$work/bench.log" | grep -v '^\(result\|skip\) ' | tail -n 15
      rc=${PIPESTATUS[0]}
      ((rc == 0 || rc == 1)) || echo "skip impl=peft mode=all reason=\"exit $rc$( ((rc == 124)) && echo ': time limit')\"" >>"$work/bench.log"
    fi
    echo
    "$py" "$root/eng/gpu/compare.py" "$work/bench.log" 2>/dev/null || grep -E '^(result|skip) ' "$work/bench.log"
  fi

  stage "summary"
  echo "device: $device${facts:+ (PyTorch $(fact version), $(fact gpu))}"
  echo "natives: route $route"
  echo "golden: $golden"
  echo "bench: $( ((skip_bench)) && echo skipped || echo "table above; raw lines in $work/bench.log")"
  [[ -n "${OUT:-}" && -d "${OUT:-}" ]] && cp "$work/bench.log" "$work/golden.log" "$OUT/" 2>/dev/null
  return "$status"
}

case "${1:-run}" in
  prepare) shift; prepare "$@" ;;
  run) shift; run "$@" ;;
  -h | --help) sed -n '2,27p' "$0" ;;
  --*) run "$@" ;;
  *) die "unknown command $1: expected prepare or run" ;;
esac
