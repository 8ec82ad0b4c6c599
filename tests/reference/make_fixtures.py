#!/usr/bin/python3
"""Independent reference for Microsoft.ML.Lora: writes golden fixtures to tests/fixtures/.

Run:  /usr/bin/python3 tests/reference/make_fixtures.py      (Debian's python3-torch, CPU)

A plain-PyTorch, float64 implementation of the decoder-only Llama family
(Llama, Qwen2, Mistral) written from the published math, not from any library.
Weights are drawn in float32 and saved as F32; the computation upcasts those exact
float32 values to float64, so the C# side sees bit-identical weights.
See tests/reference/README.md. Never hand-edit the generated fixtures.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

SCRIPT = "tests/reference/make_fixtures.py"
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures")
IGNORE = -100
B, T = 2, 7

torch.set_default_dtype(torch.float64)


# ----------------------------------------------------------------------------- cases

def _llama_config(**kw):
    c = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "mlp_bias": False,
        "model_type": "llama",
        "pretraining_tp": 1,
        "torch_dtype": "float32",
        "use_cache": True,
    }
    c.update(kw)
    return c


CASES = [
    ("llama_gqa", 1001, _llama_config(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
        # original_max_position_embeddings=128 (not 16): with theta 1e4 and head_dim 8 the
        # wavelengths are 2*pi*{1,10,100,1000} = 6.3, 62.8, 628, 6283; the thresholds are
        # high_freq_wavelen = 128/4 = 32 and low_freq_wavelen = 128/1 = 128, so pair 0 is
        # kept, pair 1 is smoothed (smooth = 0.346) and pairs 2, 3 are divided by factor.
        # With 16 the thresholds would be 4 and 16 and the "kept" branch would never run.
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 128},
        max_position_embeddings=1024, tie_word_embeddings=False)),
    ("qwen2_bias", 1002, {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 40,
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 80,
    }),
    ("llama_tied_headdim", 1003, _llama_config(
        vocab_size=56, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
        rope_theta=10000.0, rope_scaling={"type": "linear", "factor": 2.0},
        max_position_embeddings=256, tie_word_embeddings=True)),
    ("mistral", 1004, {
        # Like real Mistral configs this one has no "rope_scaling" key at all.
        "architectures": ["MistralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 8,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 32768,
        "model_type": "mistral",
        "num_attention_heads": 4,
        "num_hidden_layers": 1,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 72,
    }),
    ("qwen3", 1005, {
        # Qwen3: q_norm/k_norm (RMSNorm over each head's head_dim values) between the q/k
        # projections and RoPE; head_dim explicit and != hidden/heads, as in real Qwen3 configs.
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 40960,
        "max_window_layers": 2,
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 60,
    }),
    ("qwen2_window", 1006, {
        # Sliding-window attention shorter than the rows (T = 7, eval rows up to 9): layer 0 attends
        # fully (max_window_layers 1), layer 1 sees only the last 3 keys.
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 40,
        "max_position_embeddings": 32768,
        "max_window_layers": 1,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 3,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": True,
        "vocab_size": 64,
    }),
    ("phi3", 1007, {
        # Phi-3: fused qkv_proj (q, k, v rows) and gate_up_proj (gate rows, then up), sliding window on
        # every layer (4 < T = 7), as Phi-3-mini's config shapes it (GQA as in Phi-3-medium).
        "architectures": ["Phi3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "embd_pdrop": 0.0,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 4096,
        "model_type": "phi3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "original_max_position_embeddings": 4096,
        "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-5,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "sliding_window": 4,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 68,
    }),
    ("mistral_window", 1010, {
        # Mistral with its sliding window shorter than the rows (3 < T = 7): every layer slides.
        "architectures": ["MistralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 8,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 32768,
        "model_type": "mistral",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": 3,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 72,
    }),
    ("gemma2", 1008, {
        # Gemma 2: (1 + w) RMSNorms, four per layer; embeddings scaled by sqrt(hidden); GeGLU (tanh GELU);
        # scale query_pre_attn_scalar^-0.5 (24, not head_dim 16); attention and final logit soft-capping
        # (caps 5 and 3, small enough to bite here); layer 0 slides (window 3 < T), layer 1 is global.
        "architectures": ["Gemma2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": 5.0,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "final_logit_softcapping": 3.0,
        "head_dim": 16,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 8192,
        "model_type": "gemma2",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 24,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "sliding_window": 3,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 72,
    }),
    ("gemma3", 1009, {
        # Gemma 3 text: Gemma 2's layer without soft-capping, plus (1 + w) q_norm/k_norm before RoPE;
        # sliding layers (i + 1) % sliding_window_pattern != 0 use rope_local_base_freq without scaling,
        # global layers rope_theta with rope_scaling (linear x2 here).
        "architectures": ["Gemma3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "final_logit_softcapping": None,
        "head_dim": 16,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 32768,
        "model_type": "gemma3_text",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 16,
        "rms_norm_eps": 1e-6,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0},
        "rope_theta": 1000000.0,
        "sliding_window": 3,
        "sliding_window_pattern": 2,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": 64,
    }),
]

GEMMA = ("gemma2", "gemma3_text")

EVAL_LENGTHS = [3, 9, 5, 7, 4]
EVAL_LABELED = {1: [0, 1, 2, 6], 3: [0, 3]}  # row -> positions set to -100


# ----------------------------------------------------------------------------- config helpers

def head_dim_of(cfg):
    hd = cfg.get("head_dim")
    return hd if hd is not None else cfg["hidden_size"] // cfg["num_attention_heads"]


def qkv_bias_of(cfg):
    if cfg["model_type"] == "qwen2":
        return True  # Qwen2: q/k/v always have a bias, o_proj never
    return bool(cfg.get("attention_bias", False))


def sliding_window_of(cfg, layer):
    """The sliding window of a layer, or None (transformers: mistral's on every layer; qwen2/qwen3's with
    use_sliding_window on the layers from max_window_layers on)."""
    sw = cfg.get("sliding_window")
    if sw is None:
        return None
    if cfg["model_type"] in ("mistral", "phi3"):
        return sw
    if cfg["model_type"] in ("qwen2", "qwen3") and cfg.get("use_sliding_window"):
        return sw if layer >= cfg.get("max_window_layers", 28) else None
    if cfg["model_type"] == "gemma2":
        return sw if (layer + 1) % 2 else None  # even layers slide
    if cfg["model_type"] == "gemma3_text":
        return sw if (layer + 1) % cfg.get("sliding_window_pattern", 6) else None
    return None


def fused_of(cfg):
    return cfg["model_type"] == "phi3"  # Phi-3: qkv_proj and gate_up_proj


def qk_norm_of(cfg):
    return cfg["model_type"] in ("qwen3", "gemma3_text")  # per-head RMSNorm of q and k before RoPE


def o_bias_of(cfg):
    if cfg["model_type"] == "qwen2":
        return False
    return bool(cfg.get("attention_bias", False))


# ----------------------------------------------------------------------------- weights

def make_weights(cfg, seed):
    """float32 tensors keyed by Hugging Face parameter names."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32)

    def linear(out_f, in_f, gain=1.0):
        return randn(out_f, in_f) * (gain / math.sqrt(in_f))

    V, C, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    # N(0,1) embeddings; tied models use N(0, 0.5^2) because the embedding is also the
    # output head there, and N(0,1) would give logits of std ~sqrt(C) = 5.7 (loss ~18,
    # saturated softmax) -- far from uniform is wanted, saturated is not.
    emb_std = 0.5 if cfg["tie_word_embeddings"] else 1.0
    gemma = cfg["model_type"] in GEMMA
    if gemma:
        emb_std = 0.25  # the output head sees (1 + w)-scaled unit-RMS states: keep the softmax unsaturated

    def norm(n):
        # Gemma's RMSNorm scales by (1 + w), so its weights sit near 0; the others near 1.
        return 0.1 * randn(n) if gemma else 1 + 0.1 * randn(n)

    w = {"model.embed_tokens.weight": randn(V, C) * emb_std}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(C)
        w[p + "self_attn.q_proj.weight"] = linear(H * D, C, 1.5)
        w[p + "self_attn.k_proj.weight"] = linear(KV * D, C, 1.5)
        w[p + "self_attn.v_proj.weight"] = linear(KV * D, C)
        w[p + "self_attn.o_proj.weight"] = linear(C, H * D)
        if qk_norm_of(cfg):
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        if qkv_bias_of(cfg):
            w[p + "self_attn.q_proj.bias"] = 0.1 * randn(H * D)
            w[p + "self_attn.k_proj.bias"] = 0.1 * randn(KV * D)
            w[p + "self_attn.v_proj.bias"] = 0.1 * randn(KV * D)
        if o_bias_of(cfg):
            w[p + "self_attn.o_proj.bias"] = 0.1 * randn(C)
        w[p + "post_attention_layernorm.weight"] = norm(C)
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm(C)
            w[p + "post_feedforward_layernorm.weight"] = norm(C)
        w[p + "mlp.gate_proj.weight"] = linear(I, C, 1.5)
        w[p + "mlp.up_proj.weight"] = linear(I, C, 1.5)
        w[p + "mlp.down_proj.weight"] = linear(C, I)
    if fused_of(cfg):
        # Phi-3 stores q/k/v as one qkv_proj and gate/up as one gate_up_proj (rows concatenated).
        for i in range(cfg["num_hidden_layers"]):
            a, m = f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
            w[a + "qkv_proj.weight"] = torch.cat([w.pop(a + n + "_proj.weight") for n in "qkv"], 0)
            w[m + "gate_up_proj.weight"] = torch.cat([w.pop(m + "gate_proj.weight"), w.pop(m + "up_proj.weight")], 0)
    w["model.norm.weight"] = norm(C)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = linear(V, C, 2.0)
    return w


def is_bf16_rounded(name):
    """Linear weights, the embedding and lm_head; not norm weights, not biases."""
    return (name.endswith(".weight") and "layernorm" not in name and name != "model.norm.weight"
            and not name.endswith(("q_norm.weight", "k_norm.weight")))


# ----------------------------------------------------------------------------- RoPE

def rope_inv_freq(cfg, report=None):
    D, theta = head_dim_of(cfg), float(cfg["rope_theta"])
    inv = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    kind = rs.get("rope_type", rs.get("type"))
    factor = float(rs["factor"])
    if kind == "linear":
        return inv / factor
    if kind == "llama3":
        lo_f, hi_f = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
        orig = float(rs["original_max_position_embeddings"])
        low_wl, high_wl = orig / lo_f, orig / hi_f
        out = torch.empty_like(inv)
        branches = []
        for i in range(inv.numel()):
            f = inv[i].item()
            wl = 2 * math.pi / f
            if wl > low_wl:
                out[i] = f / factor
                branches.append("scaled")
            elif wl < high_wl:
                out[i] = f
                branches.append("kept")
            else:
                s = (orig / wl - lo_f) / (hi_f - lo_f)
                out[i] = (1 - s) * f / factor + s * f
                branches.append(f"smoothed(s={s:.4f})")
        if report is not None:
            report.extend(branches)
        return out
    raise NotImplementedError(f"rope scaling {kind}")


def rope_cos_sin(cfg, T_):
    inv = rope_inv_freq(cfg)
    pos = torch.arange(T_, dtype=torch.float64)
    freqs = pos[:, None] * inv[None, :]          # (T, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)      # (T, D)
    return emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):
    return x * cos + rotate_half(x) * sin


# ----------------------------------------------------------------------------- model

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def linear_fn(x, w, b=None):
    y = x @ w.t()
    return y + b if b is not None else y


def attention_core(q, k, v, window=None, scale=None, softcap=None):
    """q: (B,T,H,D), k/v: (B,T,KV,D) -> (B,T,H*D). Causal, GQA, scale 1/sqrt(D) unless given.
    window: query i sees keys j with i - window < j <= i (transformers' sliding_window mask).
    softcap: scores -> softcap * tanh(scores / softcap) before the mask (Gemma 2)."""
    B_, T_, H, D = q.shape
    rep = H // k.shape[2]
    k = k.repeat_interleave(rep, dim=2)          # query head h uses kv head h // rep
    v = v.repeat_interleave(rep, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * (scale if scale is not None else 1 / math.sqrt(D))
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    mask = torch.ones(T_, T_, dtype=torch.bool).triu(1)
    if window is not None:
        mask = mask | torch.ones(T_, T_, dtype=torch.bool).tril(-window)
    scores = scores.masked_fill(mask, float("-inf"))
    p = scores.softmax(-1)
    out = torch.einsum("bhqk,bkhd->bqhd", p, v)
    return out.reshape(B_, T_, H * D)


def attention_naive(q, k, v, window=None, scale=None, softcap=None):
    """Per-batch, per-head, per-position loops; the same math written independently."""
    B_, T_, H, D = q.shape
    rep = H // k.shape[2]
    out = torch.zeros(B_, T_, H * D, dtype=q.dtype)
    for b in range(B_):
        for h in range(H):
            kv = h // rep
            for t in range(T_):
                lo = 0 if window is None else max(0, t - window + 1)
                c = scale if scale is not None else 1 / math.sqrt(D)
                s = [float(torch.dot(q[b, t, h], k[b, j, kv])) * c for j in range(lo, t + 1)]
                if softcap is not None:
                    s = [softcap * math.tanh(x / softcap) for x in s]
                m = max(s)
                e = [math.exp(x - m) for x in s]
                z = sum(e)
                acc = torch.zeros(D, dtype=q.dtype)
                for j in range(lo, t + 1):
                    acc += (e[j - lo] / z) * v[b, j, kv]
                out[b, t, h * D:(h + 1) * D] = acc
    return out


def gemma_rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1 + w)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))


def forward_gemma(cfg, P, input_ids, capture=None):
    """Gemma 2 / Gemma 3 text (transformers' modeling_gemma2 / modeling_gemma3 math)."""
    B_, T_ = input_ids.shape
    H, KV, D, C = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg), cfg["hidden_size"]
    eps = cfg["rms_norm_eps"]
    scale = cfg["query_pre_attn_scalar"] ** -0.5
    softcap = cfg.get("attn_logit_softcapping")
    rope_global = rope_cos_sin(cfg, T_)
    local_cfg = dict(cfg, rope_theta=cfg.get("rope_local_base_freq", cfg["rope_theta"]), rope_scaling=None)
    rope_local = rope_cos_sin(local_cfg, T_) if cfg["model_type"] == "gemma3_text" else rope_global
    emb = P["model.embed_tokens.weight"][input_ids]
    # transformers multiplies by sqrt(hidden) cast to the hidden states' dtype: float32 for these weights.
    x = emb * float(torch.tensor(C ** 0.5, dtype=torch.float32))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        window = sliding_window_of(cfg, i)
        n = gemma_rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = linear_fn(n, P[a + "q_proj.weight"]).view(B_, T_, H, D)
        k = linear_fn(n, P[a + "k_proj.weight"]).view(B_, T_, KV, D)
        v = linear_fn(n, P[a + "v_proj.weight"]).view(B_, T_, KV, D)
        if qk_norm_of(cfg):
            q = gemma_rms_norm(q, P[a + "q_norm.weight"], eps)
            k = gemma_rms_norm(k, P[a + "k_norm.weight"], eps)
        cos, sin = rope_local if window is not None else rope_global
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        att = attention_core(q, k, v, window, scale, softcap)
        if capture is not None:
            capture.append((q.detach(), k.detach(), v.detach(), att.detach(), window, scale, softcap))
        o = linear_fn(att, P[a + "o_proj.weight"])
        x = x + gemma_rms_norm(o, P[p + "post_attention_layernorm.weight"], eps)
        n = gemma_rms_norm(x, P[p + "pre_feedforward_layernorm.weight"], eps)
        mlp = gelu_tanh(linear_fn(n, P[p + "mlp.gate_proj.weight"])) * linear_fn(n, P[p + "mlp.up_proj.weight"])
        mlp = linear_fn(mlp, P[p + "mlp.down_proj.weight"])
        x = x + gemma_rms_norm(mlp, P[p + "post_feedforward_layernorm.weight"], eps)
    x = gemma_rms_norm(x, P["model.norm.weight"], eps)
    logits = linear_fn(x, P["model.embed_tokens.weight"])
    cap = cfg.get("final_logit_softcapping")
    if cap is not None:
        logits = cap * torch.tanh(logits / cap)
    return logits, emb


def forward(cfg, P, input_ids, capture=None):
    """P: float64 tensors by HF name. Returns (logits (B,T,V), inputs_embeds)."""
    if cfg["model_type"] in GEMMA:
        return forward_gemma(cfg, P, input_ids, capture)
    B_, T_ = input_ids.shape
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    eps = cfg["rms_norm_eps"]
    cos, sin = rope_cos_sin(cfg, T_)
    emb = P["model.embed_tokens.weight"][input_ids]  # (B,T,C)
    x = emb
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        n = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        if fused_of(cfg):
            q, k, v = linear_fn(n, P[a + "qkv_proj.weight"]).split([H * D, KV * D, KV * D], -1)
            q, k, v = q.reshape(B_, T_, H, D), k.reshape(B_, T_, KV, D), v.reshape(B_, T_, KV, D)
        else:
            q = linear_fn(n, P[a + "q_proj.weight"], P.get(a + "q_proj.bias")).view(B_, T_, H, D)
            k = linear_fn(n, P[a + "k_proj.weight"], P.get(a + "k_proj.bias")).view(B_, T_, KV, D)
            v = linear_fn(n, P[a + "v_proj.weight"], P.get(a + "v_proj.bias")).view(B_, T_, KV, D)
        if qk_norm_of(cfg):
            q = rms_norm(q, P[a + "q_norm.weight"], eps)
            k = rms_norm(k, P[a + "k_norm.weight"], eps)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        window = sliding_window_of(cfg, i)
        att = attention_core(q, k, v, window)
        if capture is not None:
            capture.append((q.detach(), k.detach(), v.detach(), att.detach(), window, None, None))
        h = x + linear_fn(att, P[a + "o_proj.weight"], P.get(a + "o_proj.bias"))
        n = rms_norm(h, P[p + "post_attention_layernorm.weight"], eps)
        if fused_of(cfg):
            gate, up = linear_fn(n, P[p + "mlp.gate_up_proj.weight"]).chunk(2, -1)
        else:
            gate, up = linear_fn(n, P[p + "mlp.gate_proj.weight"]), linear_fn(n, P[p + "mlp.up_proj.weight"])
        mlp = F.silu(gate) * up
        x = h + linear_fn(mlp, P[p + "mlp.down_proj.weight"])
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return linear_fn(x, head), emb


def token_nll(logits, labels):
    """HF causal-LM shift: logits[:, :-1] predict labels[:, 1:]. Returns (sum nll, count)."""
    sl = logits[:, :-1, :]
    lab = labels[:, 1:]
    keep = lab != IGNORE
    logp = sl.log_softmax(-1)
    nll = -logp.gather(-1, lab.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (nll * keep).sum(), int(keep.sum())


def causal_lm_loss(logits, labels):
    s, n = token_nll(logits, labels)
    return s / n


# ----------------------------------------------------------------------------- helpers

def st_entry(t, dtype):
    tt = {"F32": torch.float32, "I64": torch.int64}[dtype]
    t = t.detach().to(tt).contiguous()
    return (dtype, list(t.shape), t.numpy().tobytes())


def to_f64_params(w32, bf16=False):
    P = {}
    for name, t in w32.items():
        if bf16 and is_bf16_rounded(name):
            t = t.to(torch.bfloat16)
        P[name] = t.to(torch.float64)
    return P


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- one case

def make_case(name, seed, cfg):
    torch.manual_seed(seed)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    V = cfg["vocab_size"]
    w32 = make_weights(cfg, seed)

    # --- config + model weights
    write_json(os.path.join(d, "config.json"), cfg)
    write_safetensors(os.path.join(d, "model.safetensors"),
                      {k: st_entry(v, "F32") for k, v in w32.items()}, {"format": "pt"})
    back, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    for k, v in w32.items():  # round trip through our own reader is bit-exact
        assert torch.equal(torch.tensor(back[k].values(), dtype=torch.float32).view(v.shape), v), k

    # --- batch
    g = torch.Generator().manual_seed(seed + 7)
    input_ids = torch.randint(0, V, (B, T), generator=g)
    labels = input_ids.clone()
    labels[1, [0, 1, 2, 5]] = IGNORE

    # --- float64 forward/backward
    P = {k: v.to(torch.float64).requires_grad_(True) for k, v in w32.items()}
    capture = []
    logits, emb = forward(cfg, P, input_ids, capture)
    loss = causal_lm_loss(logits, labels)
    names = sorted(P)
    grads = torch.autograd.grad(loss, [P[k] for k in names] + [emb])
    gemb = grads[-1]

    # --- self checks
    for q, k, v, att, window, scale, softcap in capture:
        assert torch.allclose(attention_naive(q, k, v, window, scale, softcap), att, rtol=0, atol=1e-12), "attention mismatch"
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
    assert abs(ref.item() - loss.item()) < 1e-12, (ref.item(), loss.item())
    probs = logits.detach().softmax(-1)
    assert probs.max().item() > 5.0 / V, "logits too close to uniform"
    # finite-difference spot check of autograd on a few parameter entries
    with torch.no_grad():
        for pi, pname in enumerate(names[:: max(1, len(names) // 5)]):
            idx = tuple((7 * pi + j) % s for j, s in enumerate(P[pname].shape))
            base = P[pname][idx].item()
            vals = []
            for delta in (1e-6, -1e-6):
                P[pname][idx] = base + delta
                lg, _ = forward(cfg, P, input_ids)
                vals.append(causal_lm_loss(lg, labels).item())
            P[pname][idx] = base
            fd = (vals[0] - vals[1]) / 2e-6
            an = grads[names.index(pname)][idx].item()
            assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)), (pname, idx, fd, an)

    # --- bf16-rounded weights
    with torch.no_grad():
        lg16, _ = forward(cfg, to_f64_params(w32, bf16=True), input_ids)
        loss_bf16 = causal_lm_loss(lg16, labels)

    # --- expected.safetensors
    exp = {
        "input_ids": st_entry(input_ids, "I64"),
        "labels": st_entry(labels, "I64"),
        "logits": st_entry(logits, "F32"),
        "loss": st_entry(loss.reshape(()), "F32"),
        "loss_bf16": st_entry(loss_bf16.reshape(()), "F32"),
        "grad.inputs_embeds": st_entry(gemb, "F32"),
    }
    for k, gk in zip(names, grads[:-1]):
        exp["grad." + k] = st_entry(gk, "F32")
    write_safetensors(os.path.join(d, "expected.safetensors"), exp,
                      {"torch_version": torch.__version__, "script": SCRIPT, "case": name,
                       "loss_f64": repr(loss.item()), "loss_bf16_f64": repr(loss_bf16.item())})

    # --- eval set
    rows = []
    total, count = 0.0, 0
    P0 = to_f64_params(w32)
    for r, L in enumerate(EVAL_LENGTHS):
        ids = torch.randint(0, V, (1, L), generator=g)
        row = {"input_ids": ids[0].tolist()}
        lab = ids.clone()
        if r in EVAL_LABELED:
            lab[0, EVAL_LABELED[r]] = IGNORE
            row["labels"] = lab[0].tolist()
        rows.append(row)
        with torch.no_grad():
            lg, _ = forward(cfg, P0, ids)
            s, n = token_nll(lg, lab)
        total += s.item()
        count += n
    with open(os.path.join(d, "eval.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    write_json(os.path.join(d, "expected_eval.json"), {"loss": total / count, "tokens": count})

    return loss.item(), loss_bf16.item(), total / count, count


def main():
    if sys.byteorder != "little":
        raise SystemExit("needs a little-endian host")
    torch.manual_seed(0)
    # llama3 rope: every branch must be exercised by case 1
    gqa_cfg = next(c for n, _, c in CASES if n == "llama_gqa")
    branches = []
    rope_inv_freq(gqa_cfg, branches)
    print("llama_gqa llama3 rope branches per frequency pair:", branches)
    assert "kept" in branches and "scaled" in branches and any(b.startswith("smoothed") for b in branches)

    # rotate-half RoPE == rotation of the complex pairs (x_i, x_{i+D/2}) by pos * inv_freq_i
    for _, _, cfg in CASES:
        D, T_ = head_dim_of(cfg), 9
        x = torch.randn(2, T_, 3, D)
        cos, sin = rope_cos_sin(cfg, T_)
        z = torch.complex(x[..., :D // 2], x[..., D // 2:])
        ang = torch.arange(T_, dtype=torch.float64)[:, None] * rope_inv_freq(cfg)[None, :]
        zr = z * torch.polar(torch.ones_like(ang), ang)[None, :, None, :]
        assert torch.allclose(apply_rope(x, cos, sin), torch.cat([zr.real, zr.imag], -1), rtol=0, atol=1e-12)

    for name, seed, cfg in CASES:
        l, l16, el, en = make_case(name, seed, cfg)
        print(f"{name:20s} loss={l:.10f} loss_bf16={l16:.10f} eval_loss={el:.10f} eval_tokens={en}")


if __name__ == "__main__":
    main()
