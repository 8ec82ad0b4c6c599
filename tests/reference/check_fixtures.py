#!/usr/bin/env python3
"""Re-reads every fixture under tests/fixtures/ with our own safetensors reader and checks
names, dtypes and shapes against config.json. Standard library only (no torch needed).

Run:  /usr/bin/python3 tests/reference/check_fixtures.py
"""

import json
import math
import os
import sys

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")


def expected_params(cfg):
    V, C, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // H
    qwen2 = cfg["model_type"] == "qwen2"
    qkv_bias = qwen2 or cfg.get("attention_bias", False)
    o_bias = (not qwen2) and cfg.get("attention_bias", False)
    s = {"model.embed_tokens.weight": [V, C], "model.norm.weight": [C]}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = [C]
        s[p + "post_attention_layernorm.weight"] = [C]
        s[p + "self_attn.q_proj.weight"] = [H * D, C]
        s[p + "self_attn.k_proj.weight"] = [KV * D, C]
        s[p + "self_attn.v_proj.weight"] = [KV * D, C]
        s[p + "self_attn.o_proj.weight"] = [C, H * D]
        if qkv_bias:
            s[p + "self_attn.q_proj.bias"] = [H * D]
            s[p + "self_attn.k_proj.bias"] = [KV * D]
            s[p + "self_attn.v_proj.bias"] = [KV * D]
        if o_bias:
            s[p + "self_attn.o_proj.bias"] = [C]
        if cfg["model_type"] == "qwen3":
            s[p + "self_attn.q_norm.weight"] = [D]
            s[p + "self_attn.k_norm.weight"] = [D]
        s[p + "mlp.gate_proj.weight"] = [I, C]
        s[p + "mlp.up_proj.weight"] = [I, C]
        s[p + "mlp.down_proj.weight"] = [C, I]
        if cfg["model_type"] == "phi3":
            s[p + "self_attn.qkv_proj.weight"] = [(H + 2 * KV) * D, C]
            s[p + "mlp.gate_up_proj.weight"] = [2 * I, C]
            for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
                del s[p + n + ".weight"]
    if not cfg["tie_word_embeddings"]:
        s["lm_head.weight"] = [V, C]
    return s


def check_case(d):
    name = os.path.basename(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    V, C = cfg["vocab_size"], cfg["hidden_size"]
    params = expected_params(cfg)

    model, meta = read_safetensors(os.path.join(d, "model.safetensors"))
    assert meta == {"format": "pt"}, meta
    assert {k: t.shape for k, t in model.items()} == params, f"{name}: model tensor names/shapes"
    assert all(t.dtype == "F32" for t in model.values())
    assert ("lm_head.weight" in model) == (not cfg["tie_word_embeddings"])

    exp, meta = read_safetensors(os.path.join(d, "expected.safetensors"))
    assert meta["script"] == "tests/reference/make_fixtures.py" and "torch_version" in meta, meta
    ids, labels = exp["input_ids"], exp["labels"]
    assert ids.dtype == labels.dtype == "I64" and ids.shape == labels.shape and len(ids.shape) == 2
    Bn, Tn = ids.shape
    iv, lv = ids.values(), labels.values()
    assert all(0 <= x < V for x in iv)
    assert lv[:Tn] == iv[:Tn], "row 0 labels must equal input_ids"
    assert any(x == -100 for x in lv[Tn:]) and all(x == -100 or x == y for x, y in zip(lv, iv))
    assert exp["logits"].shape == [Bn, Tn, V] and exp["logits"].dtype == "F32"
    for k in ("loss", "loss_bf16"):
        assert exp[k].shape == [] and exp[k].dtype == "F32"
        (val,) = exp[k].values()
        assert math.isfinite(val) and val > 0
    assert exp["grad.inputs_embeds"].shape == [Bn, Tn, C]
    grads = {k[5:]: t.shape for k, t in exp.items() if k.startswith("grad.") and k != "grad.inputs_embeds"}
    assert grads == params, f"{name}: grad names/shapes"
    assert all(math.isfinite(x) for t in exp.values() if t.dtype == "F32" for x in t.values())
    assert set(exp) == {"input_ids", "labels", "logits", "loss", "loss_bf16", "grad.inputs_embeds"} \
        | {"grad." + k for k in params}

    with open(os.path.join(d, "eval.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    assert len(rows) == 5 and sum("labels" in r for r in rows) == 2
    tokens = 0
    for r in rows:
        n = len(r["input_ids"])
        assert 3 <= n <= 9 and all(0 <= x < V for x in r["input_ids"])
        lab = r.get("labels", r["input_ids"])
        assert len(lab) == n
        tokens += sum(1 for x in lab[1:] if x != -100)
    with open(os.path.join(d, "expected_eval.json")) as f:
        ev = json.load(f)
    assert ev["tokens"] == tokens and math.isfinite(ev["loss"]), ev
    (loss,) = exp["loss"].values()
    print(f"ok {name:20s} tensors={len(model):3d} B={Bn} T={Tn} V={V} loss={loss:.6f} "
          f"eval_loss={ev['loss']:.6f} eval_tokens={tokens}")


def check_seqcls_case(d):
    """A make_seqcls_fixture.py case: a score head instead of lm_head, pooled outputs, a SEQ_CLS adapter."""
    name = os.path.basename(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    K, C = len(cfg["id2label"]), cfg["hidden_size"]
    params = expected_params(cfg)
    del params["lm_head.weight"]
    params["score.weight"] = [K, C]
    model, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    assert {k: t.shape for k, t in model.items()} == params, f"{name}: model tensor names/shapes"
    exp, meta = read_safetensors(os.path.join(d, "expected.safetensors"))
    assert meta["script"] == "tests/reference/make_seqcls_fixture.py", meta
    Bn, Tn = exp["input_ids"].shape
    assert exp["lengths"].shape == exp["labels"].shape == [Bn]
    assert max(exp["lengths"].values()) == Tn and all(0 <= x < K for x in exp["labels"].values())
    assert exp["pooled_logits"].shape == exp["base_pooled_logits"].shape == [Bn, K]
    with open(os.path.join(d, "adapter", "adapter_config.json")) as f:
        acfg = json.load(f)
    assert acfg["task_type"] == "SEQ_CLS" and "score" in acfg["modules_to_save"], acfg
    adapter, _ = read_safetensors(os.path.join(d, "adapter", "adapter_model.safetensors"))
    assert adapter["base_model.model.score.weight"].shape == [K, C]
    assert all(math.isfinite(x) for t in exp.values() if t.dtype == "F32" for x in t.values())
    print(f"ok {name:20s} tensors={len(model):3d} B={Bn} T={Tn} K={K} adapter tensors={len(adapter)}")


def main():
    # Model cases only: adapter (peft_*) and quantization (nf4) fixtures have their own checks.
    cases = sorted(e for e in os.listdir(FIX) if os.path.isfile(os.path.join(FIX, e, "config.json")))
    assert cases, "no fixtures"
    for c in cases:
        with open(os.path.join(FIX, c, "config.json")) as f:
            classifier = json.load(f)["architectures"][0].endswith("ForSequenceClassification")
        (check_seqcls_case if classifier else check_case)(os.path.join(FIX, c))


if __name__ == "__main__":
    main()
