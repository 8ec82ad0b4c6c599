#!/usr/bin/python3
"""Independent reference for the GRPO objective: writes tests/fixtures/grpo_llama_gqa/.

Run:  /usr/bin/python3 tests/reference/make_grpo_fixture.py   (after make_fixtures.py and make_peft_fixture.py)

Policy: the llama_gqa fixture with the peft_llama_gqa adapter (no dropout); sampling ("old") policy: the same adapter
at 0.8 of its scale, so policy ratios differ from 1 and some are clipped; reference: the base without the adapter.
For fixed prompts, completions and rewards it computes, in float64 with make_fixtures.py's llama implementation and
the published formulas (Shao et al. 2024, as TRL implements them):

    advantage = (r - mean(group)) / (std(group, unbiased) + 1e-4)
    ratio = exp(logp - logp_old);  per_token = -min(ratio * A, clamp(ratio, 1 - eps, 1 + eps) * A)
    kl = exp(logp_ref - logp) - (logp_ref - logp) - 1;  per_token += beta * kl
    grpo: mean over each completion's tokens, then over completions
    bnpo: sum over all tokens / all completion tokens
    dr_grpo: sum over all tokens / (completions * max_completion_length)

and the gradient of each loss with respect to every lora_A and lora_B by autograd.
See tests/reference/README.md. Never hand-edit the generated fixtures.
"""

import json
import os
import sys

import torch

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_dpo_fixture import lora_policy, token_logps  # noqa: E402
from make_fixtures import OUT, st_entry  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

SCRIPT = "tests/reference/make_grpo_fixture.py"
BASE, ADAPTER, NAME = "llama_gqa", "peft_llama_gqa", "grpo_llama_gqa"
GROUP = 3
OLD_SCALE = 0.8

torch.set_default_dtype(torch.float64)

# Two prompts, a group of three completions each (vocabulary 64), and their rewards.
PROMPTS = [[1, 5, 9], [1, 22]]
COMPLETIONS = [
    [[12, 40, 7, 2], [33, 3, 2], [12, 12, 12, 12, 2]],
    [[17, 17, 5, 60, 2], [8, 2], [50, 51, 2]],
]
REWARDS = [[1.0, 0.0, 0.5], [0.0, 0.25, 1.0]]

CASES = [
    ("grpo", {"loss": "grpo", "epsilon": 0.2, "kl_beta": 0.04, "max_completion_length": 6}),
    ("bnpo", {"loss": "bnpo", "epsilon": 0.2, "kl_beta": 0.0, "max_completion_length": 6}),
    ("dr_grpo", {"loss": "dr_grpo", "epsilon": 0.1, "kl_beta": 0.1, "max_completion_length": 6}),
]


def main():
    d = os.path.join(OUT, NAME)
    os.makedirs(d, exist_ok=True)
    cfg, base, adapter, params = lora_policy(BASE, ADAPTER)

    samples = []
    with torch.no_grad():
        P_old = params(OLD_SCALE)
        for g, prompt in enumerate(PROMPTS):
            r = torch.tensor(REWARDS[g])
            adv = (r - r.mean()) / (r.std() + 1e-4)
            for i, completion in enumerate(COMPLETIONS[g]):
                old = token_logps(cfg, P_old, prompt, completion).to(torch.float32)
                ref = token_logps(cfg, base, prompt, completion)
                samples.append({"prompt": prompt, "completion": completion, "reward": REWARDS[g][i],
                                "advantage": adv[i].item(), "old_logps": old.tolist(), "_ref": ref})

    expected = {"group_size": GROUP, "samples": [{k: v for k, v in s.items() if not k.startswith("_")} for s in samples], "cases": {}}
    for name, o in CASES:
        for t in adapter.values():
            t.grad = None
        P = params(1.0)
        eps, beta, total_tokens = o["epsilon"], o["kl_beta"], sum(len(s["completion"]) for s in samples)
        per_seq, all_tokens, clipped, kl_sum = [], [], 0, 0.0
        for s in samples:
            logp = token_logps(cfg, P, s["prompt"], s["completion"])
            old = torch.tensor(s["old_logps"], dtype=torch.float64)
            ratio = torch.exp(logp - old)
            a = s["advantage"]
            l1, l2 = ratio * a, torch.clamp(ratio, 1 - eps, 1 + eps) * a
            tok = -torch.min(l1, l2)
            clipped += int((l2 < l1).sum())
            if beta > 0:
                diff = s["_ref"] - logp
                kl = torch.exp(diff) - diff - 1
                kl_sum += kl.sum().item()
                tok = tok + beta * kl
            per_seq.append(tok.mean())
            all_tokens.append(tok)
        if o["loss"] == "grpo":
            loss = torch.stack(per_seq).mean()
        elif o["loss"] == "bnpo":
            loss = torch.cat(all_tokens).sum() / total_tokens
        else:
            loss = torch.cat(all_tokens).sum() / (len(samples) * o["max_completion_length"])
        loss.backward()
        write_safetensors(os.path.join(d, f"{name}_grads.safetensors"), {k: st_entry(v.grad, "F32") for k, v in adapter.items()},
                          {"script": SCRIPT, "case": name, "torch_version": torch.__version__})
        expected["cases"][name] = {**o, "value": loss.item(), "clipped_tokens": clipped, "kl_sum": kl_sum, "tokens": total_tokens}
        print(f"{name:8s} loss={loss.item():+.10f} clipped={clipped}/{total_tokens} kl_sum={kl_sum:.6f}")
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
