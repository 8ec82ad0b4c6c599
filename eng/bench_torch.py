"""The CPU peer of `lora bench`: the same frozen Llama forward+backward in PyTorch (Debian's python3-torch).

Weights are frozen (requires_grad=False); the embedding output requires grad, so gradients flow
through every layer as in a LoRA step, without weight gradients. With --rank r, the LoRA step of
`lora bench --rank r`: adapters on every decoder linear layer (PEFT's all-linear: q, k, v, o, gate,
up, down; not lm_head), y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ with α = 32 (LoraOptions' default) and B = 0;
A's and B's gradients computed, no dropout, no optimizer step. Prints `tokens/s=<value>`.
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 8), ("hidden", 512), ("heads", 8), ("kv-heads", 4), ("intermediate", 1408),
                          ("vocab", 8192), ("seq", 256), ("batch", 4), ("steps", 3), ("warmup", 1), ("threads", 2), ("rank", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, nh, nkv, hs, inter = a.hidden, a.heads, a.kv_heads, a.hidden // a.heads, a.intermediate

    def w(o, i):
        return torch.randn(o, i) * 0.02

    # LoRA's A (r, in) as PEFT initializes it (Kaiming-uniform, a = sqrt(5)), B (out, r) zeros; both trained.
    scale = 32.0 / a.rank if a.rank else 0.0

    def adapter(o, i):
        if a.rank == 0:
            return None
        return (torch.empty(a.rank, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)).requires_grad_(True),
                torch.zeros(o, a.rank, requires_grad=True))

    def linear(o, i):
        return (w(o, i), adapter(o, i))

    layers = [dict(q=linear(nh * hs, c), k=linear(nkv * hs, c), v=linear(nkv * hs, c), o=linear(c, nh * hs),
                   g=linear(inter, c), u=linear(inter, c), d=linear(c, inter), n1=torch.ones(c), n2=torch.ones(c)) for _ in range(a.layers)]
    adapters = [t for L in layers for p in L.values() if isinstance(p, tuple) and p[1] is not None for t in p[1]]
    emb, norm, head = torch.randn(a.vocab, c) * 0.02, torch.ones(c), w(a.vocab, c)
    inv = 1.0 / (10000 ** (torch.arange(0, hs, 2).float() / hs))
    ang = torch.outer(torch.arange(a.seq).float(), inv)
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)

    def rms(x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * wt

    def rope(x):
        x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)

    def mm(x, p):
        weight, ab = p
        y = x @ weight.T
        return y if ab is None else y + scale * ((x @ ab[0].T) @ ab[1].T)

    def step(ids):
        x = F.embedding(ids, emb).requires_grad_(True)
        b, t = ids.shape
        for L in layers:
            h = rms(x, L["n1"])
            q = rope(mm(h, L["q"]).view(b, t, nh, hs).transpose(1, 2))
            k = rope(mm(h, L["k"]).view(b, t, nkv, hs).transpose(1, 2)).repeat_interleave(nh // nkv, 1)
            v = mm(h, L["v"]).view(b, t, nkv, hs).transpose(1, 2).repeat_interleave(nh // nkv, 1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs) + mask, -1) @ v
            x = x + mm(att.transpose(1, 2).reshape(b, t, c), L["o"])
            h = rms(x, L["n2"])
            x = x + mm(F.silu(mm(h, L["g"])) * mm(h, L["u"]), L["d"])
        logits = rms(x, norm) @ head.T
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        for t in adapters:
            t.grad = None
        return loss.item()

    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    for _ in range(a.warmup):
        step(ids)
    start = time.perf_counter()
    for _ in range(a.steps):
        step(ids)
    sec = time.perf_counter() - start
    print(f"tokens/s={a.batch * a.seq * a.steps / sec:.1f} torch={torch.__version__} threads={a.threads} rank={a.rank}")


if __name__ == "__main__":
    main()
