#!/usr/bin/python3
"""Independent reference for preference optimization: writes tests/fixtures/dpo_llama_gqa/.

Run:  /usr/bin/python3 tests/reference/make_dpo_fixture.py   (after make_fixtures.py and make_peft_fixture.py)

The policy is the llama_gqa fixture with the peft_llama_gqa adapter (W + s*B@A, A and B trained-looking, s from its
rank and alpha patterns; no dropout: the C# test loads the adapter with lora_dropout 0), the
reference is the same base without the adapter. For fixed preference pairs (prompt, chosen, rejected token ids) it
computes, in float64 with the llama implementation of make_fixtures.py, each completion's summed log-probability
under both models, then the losses from the published formulas:

    h = (logp_pi(chosen) - logp_ref(chosen)) - (logp_pi(rejected) - logp_ref(rejected))
    sigmoid (DPO, Rafailov et al. 2023), cDPO label smoothing e:
        loss = -(1 - e) * log sigmoid(beta * h) - e * log sigmoid(-beta * h)
    ipo (Azar et al. 2023), on log-probabilities averaged over each completion's tokens (as TRL):
        loss = (h_avg - 1 / (2 * beta))^2
    rpo (Pang et al. 2024, TRL's rpo_alpha): loss += alpha * (-logp_pi(chosen) / len(chosen))
    rewards = beta * (logp_pi - logp_ref); margin = chosen reward - rejected reward

averaged over the pairs, and the gradient of each loss with respect to every lora_A and lora_B by autograd.
See tests/reference/README.md. Never hand-edit the generated fixtures.
"""

import json
import os
import sys

import torch

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import OUT, forward, st_entry  # noqa: E402
from make_peft_fixture import PREFIX, load_f32, pattern_value  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

SCRIPT = "tests/reference/make_dpo_fixture.py"
BASE, ADAPTER, NAME = "llama_gqa", "peft_llama_gqa", "dpo_llama_gqa"

torch.set_default_dtype(torch.float64)

# Prompt, chosen, rejected (vocabulary 64); completions of different lengths.
PAIRS = [
    ([1, 5, 9], [12, 40, 7, 2], [33, 3, 2]),
    ([1, 22], [17, 17, 5, 60, 2], [8, 2]),
    ([1, 4, 4, 30, 11], [9, 2], [50, 51, 52, 2]),
]

LOSSES = [
    ("sigmoid", {"beta": 0.1, "loss": "sigmoid", "label_smoothing": 0.0}),
    ("cdpo", {"beta": 0.5, "loss": "sigmoid", "label_smoothing": 0.2}),
    ("ipo", {"beta": 0.1, "loss": "ipo", "label_smoothing": 0.0}),
    ("rpo", {"beta": 0.1, "loss": "sigmoid", "label_smoothing": 0.0, "rpo_alpha": 1.0}),
]


def token_logps(cfg, P, prompt, completion):
    """ln p of each completion token given the prompt and the completion tokens before it."""
    ids = torch.tensor([prompt + completion], dtype=torch.int64)
    logits, _ = forward(cfg, P, ids)
    logp = logits[0, :-1].log_softmax(-1)
    token = logp.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
    return token[len(prompt) - 1:]


def completion_logp(cfg, P, prompt, completion):
    return token_logps(cfg, P, prompt, completion).sum()


def lora_policy(base_case, adapter_case):
    """(config, float64 base weights, trainable adapter tensors, params(factor)): params gives W + factor * s * B @ A,
    s from the adapter's rank and alpha patterns."""
    with open(os.path.join(OUT, base_case, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    with open(os.path.join(OUT, adapter_case, "adapter_config.json"), encoding="utf-8") as f:
        acfg = json.load(f)
    base = {k: v.to(torch.float64) for k, v in load_f32(os.path.join(OUT, base_case, "model.safetensors")).items()}
    adapter = {k: v.to(torch.float64).requires_grad_(True) for k, v in load_f32(os.path.join(OUT, adapter_case, "adapter_model.safetensors")).items()}
    modules = sorted({k[len(PREFIX):].rsplit(".lora_", 1)[0] for k in adapter})
    scales = {m: pattern_value(m, acfg["alpha_pattern"], acfg["lora_alpha"]) / pattern_value(m, acfg["rank_pattern"], acfg["r"]) for m in modules}

    def params(factor=1.0):
        P = dict(base)
        for m in modules:
            P[m + ".weight"] = base[m + ".weight"] + factor * scales[m] * (adapter[PREFIX + m + ".lora_B.weight"] @ adapter[PREFIX + m + ".lora_A.weight"])
        return P

    return cfg, base, adapter, params


def main():
    d = os.path.join(OUT, NAME)
    os.makedirs(d, exist_ok=True)
    cfg, base, adapter, policy_params = lora_policy(BASE, ADAPTER)

    with torch.no_grad():
        ref = [(completion_logp(cfg, base, p, c), completion_logp(cfg, base, p, r)) for p, c, r in PAIRS]
    expected = {"pairs": [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS], "losses": {}}
    for name, o in LOSSES:
        for t in adapter.values():
            t.grad = None
        P = policy_params()
        pol = [(completion_logp(cfg, P, p, c), completion_logp(cfg, P, p, r)) for p, c, r in PAIRS]
        beta, eps = o["beta"], o["label_smoothing"]
        losses, margins, correct = [], [], 0
        for (pc, pr), (rc, rr), (_, c, r) in zip(pol, ref, PAIRS):
            if o["loss"] == "ipo":
                h = (pc - rc) / len(c) - (pr - rr) / len(r)
                loss = (h - 1 / (2 * beta)) ** 2
            else:
                z = beta * ((pc - rc) - (pr - rr))
                loss = -(1 - eps) * torch.nn.functional.logsigmoid(z) - eps * torch.nn.functional.logsigmoid(-z)
            # RPO (TRL's rpo_alpha): + alpha * the chosen completion's mean token NLL
            loss = loss + o.get("rpo_alpha", 0.0) * (-pc / len(c))
            losses.append(loss)
            cr, rj = beta * (pc - rc).item(), beta * (pr - rr).item()
            margins.append(cr - rj)
            correct += int(cr > rj)
        mean = torch.stack(losses).mean()
        mean.backward()
        grads = {k: st_entry(v.grad, "F32") for k, v in adapter.items()}
        write_safetensors(os.path.join(d, f"{name}_grads.safetensors"), grads, {"script": SCRIPT, "loss": name, "torch_version": torch.__version__})
        expected["losses"][name] = {
            "beta": o["beta"], "loss_type": o["loss"], "label_smoothing": o["label_smoothing"], "rpo_alpha": o.get("rpo_alpha", 0.0),
            "loss": mean.item(),
            "margin": sum(margins) / len(margins),
            "accuracy": correct / len(PAIRS),
            "policy_chosen_logps": [pc.item() for pc, _ in pol],
            "policy_rejected_logps": [pr.item() for _, pr in pol],
            "reference_chosen_logps": [rc.item() for rc, _ in ref],
            "reference_rejected_logps": [rr.item() for _, rr in ref],
        }
        print(f"{name:8s} loss={mean.item():.10f} margin={sum(margins) / len(margins):+.6f} accuracy={correct}/{len(PAIRS)}")
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
