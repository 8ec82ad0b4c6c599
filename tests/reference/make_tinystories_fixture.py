#!/usr/bin/python3
"""Golden outputs of the real pretrained model in models/tinystories-656k (float64 reference).

Run:  /usr/bin/python3 tests/reference/make_tinystories_fixture.py

Reads the shipped checkpoint as published (its tied matrix is stored only as lm_head.weight),
runs make_fixtures.py's float64 forward, and writes tests/fixtures/tinystories/expected.safetensors:
  input_ids, labels  (2, T)   two story openings, the shorter one padded with id 0 and label -100
  logits             (2, T, V) float64 logits stored as F32
  loss                          Hugging Face causal-LM loss (also as loss_f64 in the metadata)
  prompt_ids, greedy_ids        a prompt and its 24-token greedy continuation (no stop token)
The token ids are inputs (the model's own tokenizer.json gives them; the text is in the metadata).
Self-check: at every greedy step the top logit leads the runner-up by more than MIN_MARGIN,
so float32 engines must pick the same tokens.
"""

import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import IGNORE, OUT, ROOT, causal_lm_loss, forward, st_entry  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

import json  # noqa: E402

SCRIPT = "tests/reference/make_tinystories_fixture.py"
MODEL = os.path.join(ROOT, "models", "tinystories-656k")
NEW_TOKENS = 24
MIN_MARGIN = 1e-3

# Token ids of the texts below under the model's tokenizer.json (BOS <|start_story|> = 1 first).
ROWS = {
    "Once upon a time, there was a little dog named Max. Max liked to run in the park with his friend, a small cat.":
        [1, 80, 147, 201, 282, 215, 286, 229, 2047, 1012, 463, 1935, 238, 834, 461, 1402, 552, 476, 10],
    "Tom and Sue went to the beach. They built a big sand castle and":
        [1, 80, 875, 566, 588, 762, 191, 144, 366, 129, 72, 592, 107, 90, 1728, 177, 1059],
}
PROMPT = ("One day, a little girl named Lily found a", [1, 80, 429, 598, 303, 371, 53])


def load_params():
    with open(os.path.join(MODEL, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    tensors, _ = read_safetensors(os.path.join(MODEL, "model.safetensors"))
    P = {}
    for name, t in tensors.items():
        assert t.dtype == "F32", (name, t.dtype)
        P[name] = torch.tensor(t.values(), dtype=torch.float32).view(t.shape).to(torch.float64)
    assert cfg["tie_word_embeddings"] and "model.embed_tokens.weight" not in P
    P["model.embed_tokens.weight"] = P.pop("lm_head.weight")
    return cfg, P


def greedy(cfg, P, prompt):
    ids = list(prompt)
    margin = float("inf")
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            logits, _ = forward(cfg, P, torch.tensor([ids]))
            top2 = logits[0, -1].topk(2).values
            margin = min(margin, (top2[0] - top2[1]).item())
            ids.append(int(logits[0, -1].argmax()))
    assert margin > MIN_MARGIN, f"greedy top-2 margin {margin} too small for a float32 comparison"
    return ids[len(prompt):], margin


def main():
    cfg, P = load_params()
    V = cfg["vocab_size"]
    T = max(len(r) for r in ROWS.values())
    input_ids = torch.zeros((len(ROWS), T), dtype=torch.int64)
    labels = torch.full((len(ROWS), T), IGNORE, dtype=torch.int64)
    for r, ids in enumerate(ROWS.values()):
        assert all(0 <= i < V for i in ids)
        input_ids[r, :len(ids)] = torch.tensor(ids)
        labels[r, :len(ids)] = torch.tensor(ids)
    with torch.no_grad():
        logits, _ = forward(cfg, P, input_ids)
        loss = causal_lm_loss(logits, labels)
    # a pretrained model predicts stories far better than chance (ln 2048 = 7.6)
    assert loss.item() < 4.0, loss.item()
    continuation, margin = greedy(cfg, P, PROMPT[1])

    d = os.path.join(OUT, "tinystories")
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "expected.safetensors"), {
        "input_ids": st_entry(input_ids, "I64"),
        "labels": st_entry(labels, "I64"),
        "logits": st_entry(logits, "F32"),
        "loss": st_entry(loss.reshape(()), "F32"),
        "prompt_ids": st_entry(torch.tensor(PROMPT[1]), "I64"),
        "greedy_ids": st_entry(torch.tensor(continuation), "I64"),
    }, {"torch_version": torch.__version__, "script": SCRIPT, "model": "models/tinystories-656k",
        "texts": json.dumps(list(ROWS)), "prompt": PROMPT[0],
        "loss_f64": repr(loss.item()), "greedy_min_margin": repr(margin)})
    print(f"tinystories: loss {loss.item():.6f}, greedy {continuation} (min top-2 margin {margin:.4f})")


if __name__ == "__main__":
    main()
