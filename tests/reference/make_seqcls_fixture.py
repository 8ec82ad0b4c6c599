#!/usr/bin/python3
"""Independent reference for sequence classification: writes tests/fixtures/seqcls_llama/.

Run:  /usr/bin/python3 tests/reference/make_seqcls_fixture.py

A tiny LlamaForSequenceClassification (the decoder of make_fixtures.py, then a `score` head
(num_labels, hidden) without bias instead of lm_head) and a PEFT SEQ_CLS LoRA adapter for it,
laid out as PEFT's save_pretrained writes one (no `peft` or `transformers` package is used):
LoRA A/B on q_proj, v_proj, down_proj, and the trained head saved whole under
base_model.model.score.weight, with modules_to_save ["classifier", "score"] as PEFT's
PeftModelForSequenceClassification records it.

Computed in float64 with autograd, following transformers' LlamaForSequenceClassification:
logits of every position, pooled at each row's last non-padding token (the last position whose
id is not pad_token_id; rows are right-padded and hold no pad id), cross entropy against one
class per row, mean over rows. See tests/reference/README.md. Never hand-edit the fixtures.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import OUT, _llama_config, forward, make_weights, st_entry, write_json  # noqa: E402
from make_peft_fixture import PREFIX, peft_config  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

SCRIPT = "tests/reference/make_seqcls_fixture.py"
NAME = "seqcls_llama"
SEED = 3001
LABELS = ["negative", "neutral", "positive"]
PAD = 0
LENGTHS = [5, 7, 3]          # right-padded to T = 7
CLASSES = [2, 0, 1]
TARGETS = ["down_proj", "q_proj", "v_proj"]
R, ALPHA = 4, 8

torch.set_default_dtype(torch.float64)


def config():
    c = _llama_config(
        architectures=["LlamaForSequenceClassification"],
        vocab_size=48, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
        max_position_embeddings=64, tie_word_embeddings=False, pad_token_id=PAD,
        id2label={str(i): n for i, n in enumerate(LABELS)},
        label2id={n: i for i, n in enumerate(LABELS)})
    return c


def classify(cfg, P, input_ids):
    """Pooled class logits (B, K): the score head at each row's last non-padding token."""
    Q = dict(P)
    Q["lm_head.weight"] = P["score.weight"]  # forward() applies lm_head.weight as the output head
    logits, _ = forward(cfg, Q, input_ids)
    non_pad = (input_ids != cfg["pad_token_id"]).long()
    last = (torch.arange(input_ids.shape[1]) * non_pad).argmax(-1)
    return logits[torch.arange(input_ids.shape[0]), last], logits


def main():
    if sys.byteorder != "little":
        raise SystemExit("needs a little-endian host")
    d = os.path.join(OUT, NAME)
    adapter_dir = os.path.join(d, "adapter")
    os.makedirs(adapter_dir, exist_ok=True)
    cfg = config()
    K, C, V = len(LABELS), cfg["hidden_size"], cfg["vocab_size"]
    g = torch.Generator().manual_seed(SEED)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32)

    w32 = make_weights(cfg, SEED)
    del w32["lm_head.weight"]                     # a classifier has no lm_head
    w32["score.weight"] = randn(K, C) * (2.0 / math.sqrt(C))
    write_json(os.path.join(d, "config.json"), cfg)
    write_safetensors(os.path.join(d, "model.safetensors"),
                      {k: st_entry(v, "F32") for k, v in w32.items()}, {"format": "pt"})

    # --- the adapter: non-zero A and B, and a head that moved away from the base one
    modules = [k[:-len(".weight")] for k in w32 if any(k.endswith(t + ".weight") for t in TARGETS)]
    adapter = {}
    for m in modules:
        out_f, in_f = w32[m + ".weight"].shape
        adapter[PREFIX + m + ".lora_A.weight"] = randn(R, in_f) * (1.0 / math.sqrt(in_f))
        adapter[PREFIX + m + ".lora_B.weight"] = randn(out_f, R) * (0.5 / math.sqrt(R))
    adapter[PREFIX + "score.weight"] = w32["score.weight"] + 0.5 * randn(K, C) * (2.0 / math.sqrt(C))
    write_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"),
                      {k: st_entry(v, "F32") for k, v in adapter.items()}, {"format": "pt"})
    with open(os.path.join(adapter_dir, "adapter_config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(peft_config(
            base_model_name_or_path="tests/fixtures/" + NAME, r=R, lora_alpha=ALPHA,
            target_modules=TARGETS, modules_to_save=["classifier", "score"], task_type="SEQ_CLS"),
            indent=2, sort_keys=True))

    # --- batch: ids in 1..V-1 (no pad id inside a row), right-padded with PAD
    T = max(LENGTHS)
    input_ids = torch.full((len(LENGTHS), T), PAD, dtype=torch.int64)
    for r, n in enumerate(LENGTHS):
        input_ids[r, :n] = torch.randint(1, V, (n,), generator=g)
    labels = torch.tensor(CLASSES, dtype=torch.int64)

    # --- base model
    base = {k: v.to(torch.float64) for k, v in w32.items()}
    with torch.no_grad():
        base_pooled, _ = classify(cfg, base, input_ids)

    # --- with the adapter: W + s·B·A, head replaced; gradients of the mean loss
    s = ALPHA / R
    A = {m: adapter[PREFIX + m + ".lora_A.weight"].to(torch.float64).requires_grad_(True) for m in modules}
    B = {m: adapter[PREFIX + m + ".lora_B.weight"].to(torch.float64).requires_grad_(True) for m in modules}
    score = adapter[PREFIX + "score.weight"].to(torch.float64).requires_grad_(True)

    def adapted():
        P = dict(base)
        for m in modules:
            P[m + ".weight"] = base[m + ".weight"] + s * (B[m] @ A[m])
        P["score.weight"] = score
        return P

    pooled, all_logits = classify(cfg, adapted(), input_ids)
    loss = F.cross_entropy(pooled, labels)
    leaves = [score] + [A[m] for m in modules] + [B[m] for m in modules]
    grads = torch.autograd.grad(loss, leaves)

    # --- self checks
    with torch.no_grad():
        P = adapted()
        for r, n in enumerate(LENGTHS):
            alone, _ = classify(cfg, P, input_ids[r:r + 1, :n])  # unpadded row: padding changes nothing
            assert torch.allclose(alone[0], pooled[r], rtol=0, atol=1e-12), r
        manual = -sum(pooled[r].log_softmax(-1)[CLASSES[r]] for r in range(len(CLASSES))) / len(CLASSES)
        assert abs(manual.item() - loss.item()) < 1e-12
        assert (pooled - base_pooled).abs().max() > 0.1 * (base_pooled.max() - base_pooled.min()), "adapter too weak"
        for leaf, gl in zip(leaves[:3], grads[:3]):  # finite differences on a few entries
            for idx in [(0, 0), (1, 3)]:
                keep = leaf[idx].item()
                vals = []
                for delta in (1e-6, -1e-6):
                    leaf[idx] = keep + delta
                    pl, _ = classify(cfg, adapted(), input_ids)
                    vals.append(F.cross_entropy(pl, labels).item())
                leaf[idx] = keep
                fd = (vals[0] - vals[1]) / 2e-6
                assert abs(fd - gl[idx].item()) <= 1e-6 * max(1.0, abs(gl[idx].item())), (idx, fd, gl[idx].item())
        assert all_logits.shape == (len(LENGTHS), T, K)

    exp = {
        "input_ids": st_entry(input_ids, "I64"),
        "lengths": st_entry(torch.tensor(LENGTHS), "I64"),
        "labels": st_entry(labels, "I64"),
        "base_pooled_logits": st_entry(base_pooled, "F32"),
        "pooled_logits": st_entry(pooled, "F32"),
        "loss": st_entry(loss.reshape(()), "F32"),
        "grad.score.weight": st_entry(grads[0], "F32"),
    }
    for i, m in enumerate(modules):
        exp[f"grad.{m}.lora_A"] = st_entry(grads[1 + i], "F32")
        exp[f"grad.{m}.lora_B"] = st_entry(grads[1 + len(modules) + i], "F32")
    write_safetensors(os.path.join(d, "expected.safetensors"), exp,
                      {"torch_version": torch.__version__, "script": SCRIPT, "case": NAME, "loss_f64": repr(loss.item())})
    back, _ = read_safetensors(os.path.join(d, "expected.safetensors"))
    assert set(back) == set(exp)
    print(f"{NAME}: loss={loss.item():.10f} pooled={pooled.tolist()}")


if __name__ == "__main__":
    main()
