#!/usr/bin/python3
"""Independent reference for PEFT adapter folders: writes tests/fixtures/peft_<case>/.

Run:  /usr/bin/python3 tests/reference/make_peft_fixture.py   (after make_fixtures.py)

Each case is a LoRA adapter folder laid out the way PEFT's save_pretrained writes one
(adapter_config.json + adapter_model.safetensors; no `peft` package is used, the file
conventions are PEFT's documented ones), plus what the base model computes WITH the
adapter applied, in float64, using the llama implementation of make_fixtures.py:

    W_eff = W + s * B @ A,   s = lora_alpha / r   (use_rslora: lora_alpha / sqrt(r))

with r and lora_alpha of a module taken from rank_pattern / alpha_pattern when a key
matches the module path (PEFT's rule: re.match(rf"(.*\\.)?({key})$", path)).
See tests/reference/README.md. Never hand-edit the generated fixtures.
"""

import json
import math
import os
import re
import sys

import torch

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import OUT, causal_lm_loss, forward, st_entry, token_nll  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

SCRIPT = "tests/reference/make_peft_fixture.py"
PREFIX = "base_model.model."

torch.set_default_dtype(torch.float64)


def peft_config(**kw):
    """adapter_config.json with the fields PEFT 0.10-0.13 writes for LoRA (older PEFT rejects unknown keys)."""
    c = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": None,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": 4,
        "rank_pattern": {},
        "revision": None,
        "target_modules": None,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    c.update(kw)
    return c


CASES = [
    # list targets, a rank_pattern and an alpha_pattern override, dropout (inactive at inference)
    ("peft_llama_gqa", "llama_gqa", 2001, peft_config(
        base_model_name_or_path="tests/fixtures/llama_gqa",
        r=4, lora_alpha=8, lora_dropout=0.05,
        target_modules=["down_proj", "q_proj", "v_proj"],
        rank_pattern={"model.layers.1.self_attn.q_proj": 2},
        alpha_pattern={"down_proj": 16})),
    # rsLoRA, a regex STRING target (layers_to_transform is ignored by PEFT then), lm_head fully trained
    ("peft_llama_gqa_rslora", "llama_gqa", 2002, peft_config(
        base_model_name_or_path="tests/fixtures/llama_gqa",
        r=4, lora_alpha=8, use_rslora=True, init_lora_weights="gaussian",
        target_modules=r"model\.layers\.1\.(self_attn\.(k_proj|o_proj)|mlp\.up_proj)",
        rank_pattern={"up_proj": 8},
        modules_to_save=["lm_head"])),
    # trained biases of the adapted layers, only layer 0
    ("peft_qwen2_bias", "qwen2_bias", 2003, peft_config(
        base_model_name_or_path="tests/fixtures/qwen2_bias",
        r=4, lora_alpha=8, bias="lora_only",
        target_modules=["k_proj", "o_proj", "q_proj", "v_proj"],
        layers_to_transform=[0])),
    # Qwen3 (q_norm/k_norm between the adapted q/k projections and RoPE), every projection adapted
    ("peft_qwen3", "qwen3", 2004, peft_config(
        base_model_name_or_path="tests/fixtures/qwen3",
        r=4, lora_alpha=8,
        target_modules=["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"])),
    # Phi-3: LoRA on the fused qkv_proj and gate_up_proj as PEFT adapts them (one A, one B of the fused width)
    ("peft_phi3", "phi3", 2005, peft_config(
        base_model_name_or_path="tests/fixtures/phi3",
        r=4, lora_alpha=8,
        target_modules=["down_proj", "gate_up_proj", "o_proj", "qkv_proj"])),
    # Gemma 2 (soft-capped attention and logits, sandwich norms, GeGLU), every projection adapted
    ("peft_gemma2", "gemma2", 2006, peft_config(
        base_model_name_or_path="tests/fixtures/gemma2",
        r=4, lora_alpha=8,
        target_modules=["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"])),
    # Gemma 3 (q/k norms after the adapted projections, local RoPE on the sliding layer), attention only, rsLoRA
    ("peft_gemma3", "gemma3", 2007, peft_config(
        base_model_name_or_path="tests/fixtures/gemma3",
        r=4, lora_alpha=8, use_rslora=True,
        target_modules=["k_proj", "o_proj", "q_proj", "v_proj"])),
]


def load_f32(path):
    tensors, _ = read_safetensors(path)
    return {k: torch.tensor(t.values(), dtype=torch.float32).view(t.shape) for k, t in tensors.items()}


def load_i64(path, name):
    tensors, _ = read_safetensors(path)
    t = tensors[name]
    return torch.tensor(t.values(), dtype=torch.int64).view(t.shape)


def linear_paths(base):
    return [k[:-len(".weight")] for k in base if k.endswith("_proj.weight")]


def layer_of(path):
    m = re.search(r"(?:^|\.)layers\.(\d+)\.", path)
    return int(m.group(1)) if m else None


def targeted(path, cfg):
    """PEFT's check_target_module_exists: regex fullmatch for a string; else exact or dotted suffix + layers."""
    t = cfg["target_modules"]
    if isinstance(t, str):
        return re.fullmatch(t, path) is not None
    if not any(path == n or path.endswith("." + n) for n in t):
        return False
    layers = cfg["layers_to_transform"]
    return layers is None or layer_of(path) in layers


def pattern_value(path, pattern, default):
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", path):
            return value
    return default


def make_case(name, base_case, seed, cfg):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    base_dir = os.path.join(OUT, base_case)
    with open(os.path.join(base_dir, "config.json"), encoding="utf-8") as f:
        model_cfg = json.load(f)
    base = load_f32(os.path.join(base_dir, "model.safetensors"))
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32)

    # --- adapter tensors, named as PEFT saves them (adapter name removed from the key)
    adapter, scales = {}, {}
    modules = [p for p in linear_paths(base) if targeted(p, cfg)]
    assert modules, name
    for m in modules:
        out_f, in_f = base[m + ".weight"].shape
        r = pattern_value(m, cfg["rank_pattern"], cfg["r"])
        alpha = pattern_value(m, cfg["alpha_pattern"], cfg["lora_alpha"])
        scales[m] = alpha / math.sqrt(r) if cfg["use_rslora"] else alpha / r
        # Trained-looking A and B: both non-zero, so B·A is far from the identity update.
        adapter[PREFIX + m + ".lora_A.weight"] = randn(r, in_f) * (1.0 / math.sqrt(in_f))
        adapter[PREFIX + m + ".lora_B.weight"] = randn(out_f, r) * (0.5 / math.sqrt(r))
        if cfg["bias"] == "lora_only" and m + ".bias" in base:
            # Current PEFT wraps the adapted Linear, so its bias lives at <module>.base_layer.bias.
            adapter[PREFIX + m + ".base_layer.bias"] = base[m + ".bias"] + 0.1 * randn(out_f)
    for m in cfg["modules_to_save"] or []:
        w = base[m + ".weight"]
        adapter[PREFIX + m + ".weight"] = w + 0.2 * w.abs().mean() * randn(*w.shape)

    with open(os.path.join(d, "adapter_config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))  # as PEFT's save_pretrained: no trailing newline
    write_safetensors(os.path.join(d, "adapter_model.safetensors"),
                      {k: st_entry(v, "F32") for k, v in adapter.items()}, {"format": "pt"})

    # --- effective float64 weights
    P = {k: v.to(torch.float64) for k, v in base.items()}
    for m in modules:
        A = adapter[PREFIX + m + ".lora_A.weight"].to(torch.float64)
        B = adapter[PREFIX + m + ".lora_B.weight"].to(torch.float64)
        P[m + ".weight"] = P[m + ".weight"] + scales[m] * (B @ A)
    for k, v in adapter.items():
        if ".lora_" in k:
            continue
        hf = k[len(PREFIX):].replace(".base_layer.", ".")
        assert hf in P, k
        P[hf] = v.to(torch.float64)

    exp_path = os.path.join(base_dir, "expected.safetensors")
    input_ids, labels = load_i64(exp_path, "input_ids"), load_i64(exp_path, "labels")
    with torch.no_grad():
        logits, _ = forward(model_cfg, P, input_ids)
        loss = causal_lm_loss(logits, labels)
        base_logits, _ = forward(model_cfg, {k: v.to(torch.float64) for k, v in base.items()}, input_ids)
    change = (logits - base_logits).abs().max().item()
    # The adapter must visibly change the model, or a loader that ignores it would pass.
    assert change > 0.1 * base_logits.abs().max().item(), (name, change)

    write_safetensors(os.path.join(d, "expected.safetensors"), {
        "input_ids": st_entry(input_ids, "I64"),
        "labels": st_entry(labels, "I64"),
        "logits": st_entry(logits, "F32"),
        "loss": st_entry(loss.reshape(()), "F32"),
    }, {"torch_version": torch.__version__, "script": SCRIPT, "case": name, "base": base_case,
        "loss_f64": repr(loss.item())})

    # --- eval set of the base case, with the adapter
    total, count = 0.0, 0
    with open(os.path.join(base_dir, "eval.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row["input_ids"]], dtype=torch.int64)
            lab = torch.tensor([row.get("labels", row["input_ids"])], dtype=torch.int64)
            lg, _ = forward(model_cfg, P, ids)
            s, n = token_nll(lg, lab)
            total += s.item()
            count += n
    with open(os.path.join(d, "eval_expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"loss": total / count, "tokens": count}, indent=2, sort_keys=True) + "\n")
    return loss.item(), change, total / count, count, len(adapter)


def main():
    if sys.byteorder != "little":
        raise SystemExit("needs a little-endian host")
    for name, base_case, seed, cfg in CASES:
        loss, change, el, en, n = make_case(name, base_case, seed, cfg)
        print(f"{name:24s} tensors={n:3d} loss={loss:.10f} max|dlogits|={change:.4f} eval_loss={el:.10f} eval_tokens={en}")


if __name__ == "__main__":
    main()
