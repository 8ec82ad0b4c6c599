"""The CPU peer of `lora bench`: the same frozen Llama forward+backward in PyTorch (Debian's python3-torch).

Weights are frozen (requires_grad=False); the embedding output requires grad, so gradients flow
through every layer as in a LoRA step, without weight gradients. Prints `tokens/s=<value>`.
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 8), ("hidden", 512), ("heads", 8), ("kv-heads", 4), ("intermediate", 1408),
                          ("vocab", 8192), ("seq", 256), ("batch", 4), ("steps", 3), ("warmup", 1), ("threads", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, nh, nkv, hs, inter = a.hidden, a.heads, a.kv_heads, a.hidden // a.heads, a.intermediate

    def w(o, i):
        return torch.randn(o, i) * 0.02

    layers = [dict(q=w(nh * hs, c), k=w(nkv * hs, c), v=w(nkv * hs, c), o=w(c, nh * hs),
                   g=w(inter, c), u=w(inter, c), d=w(c, inter), n1=torch.ones(c), n2=torch.ones(c)) for _ in range(a.layers)]
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

    def step(ids):
        x = F.embedding(ids, emb).requires_grad_(True)
        b, t = ids.shape
        for L in layers:
            h = rms(x, L["n1"])
            q = rope((h @ L["q"].T).view(b, t, nh, hs).transpose(1, 2))
            k = rope((h @ L["k"].T).view(b, t, nkv, hs).transpose(1, 2)).repeat_interleave(nh // nkv, 1)
            v = (h @ L["v"].T).view(b, t, nkv, hs).transpose(1, 2).repeat_interleave(nh // nkv, 1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs) + mask, -1) @ v
            x = x + att.transpose(1, 2).reshape(b, t, c) @ L["o"].T
            h = rms(x, L["n2"])
            x = x + (F.silu(h @ L["g"].T) * (h @ L["u"].T)) @ L["d"].T
        logits = rms(x, norm) @ head.T
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        return loss.item()

    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    for _ in range(a.warmup):
        step(ids)
    start = time.perf_counter()
    for _ in range(a.steps):
        step(ids)
    sec = time.perf_counter() - start
    print(f"tokens/s={a.batch * a.seq * a.steps / sec:.1f} torch={torch.__version__} threads={a.threads}")


if __name__ == "__main__":
    main()
