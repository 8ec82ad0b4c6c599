#!/usr/bin/env python3
"""The PyTorch + PEFT side of eng/gpu-check.sh's benchmark: the same training step as lora-gpu-check's bench.

Each mode loads the model folder that `lora-gpu-check make-model` wrote (random BF16 Llama weights), adds LoRA
r=16 (alpha 32, dropout 0) on every linear layer but lm_head with PEFT, and times steps of: forward and backward
of the mean token loss under bf16 autocast, clip_grad_norm_(1.0), AdamW (lr 2e-4, no weight decay) on the LoRA
parameters. The tokens are the same LCG ids as the .NET side's, so the first losses compare.

Modes: lora (BF16 base), lora-ckpt (plus gradient checkpointing, non-reentrant), qlora (bitsandbytes NF4 with
double quantization, bf16 compute; embedding and lm_head stay BF16 as on the .NET side). Memory: the device's
total - free bytes after each step (torch.cuda.mem_get_info, as the .NET side reads it), plus PyTorch's own
max_memory_allocated / max_memory_reserved; on the CPU the process's peak resident set.

Prints one `result ...` or `skip ...` line of key=value pairs per mode; exits 0 unless a mode failed.
"""

import argparse
import gc
import importlib
import resource
import sys
import time


def lcg_tokens(row, length, vocab):
    """Row `row` of the batch: x <- 1664525*x + 1013904223 (mod 2^32) from x = row + 1, token = (x >> 8) % vocab."""
    x = row + 1
    ids = []
    for _ in range(length):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        ids.append((x >> 8) % vocab)
    return ids


def say(kind, **fields):
    parts = [kind] + [f"{k}={v}" for k, v in fields.items()]
    print(" ".join(parts), flush=True)


def missing(names):
    """Names of the modules in `names` that cannot be imported, with the reason."""
    out = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # ImportError, or a broken install raising anything else
            out.append(f"{name} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    return out


def dtype_kwarg(transformers):
    # transformers 4.56 renamed from_pretrained's torch_dtype to dtype; 5.x keeps only the new name working quietly.
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def run_mode(mode, args, torch, transformers, peft):
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    started = time.perf_counter()
    kw = {dtype_kwarg(transformers): torch.bfloat16}
    if mode == "qlora":
        quant = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            args.model, quantization_config=quant, device_map={"": device.index or 0}, attn_implementation="sdpa", **kw)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(args.model, attn_implementation="sdpa", **kw).to(device)
    model.config.use_cache = False
    if mode == "lora-ckpt":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    config = peft.LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0, target_modules="all-linear",
                             bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    vocab = model.config.vocab_size
    ids = torch.tensor([lcg_tokens(r, args.seq, vocab) for r in range(args.batch)], dtype=torch.long, device=device)
    setup = time.perf_counter() - started

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    peak_used = 0
    times = []
    losses = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        losses.append(float(loss.detach()))
        if cuda:
            free, total = torch.cuda.mem_get_info(device)
            peak_used = max(peak_used, total - free)
        if step >= args.warmup:
            times.append(elapsed)

    times.sort()
    median = times[len(times) // 2]
    tokens = args.batch * args.seq
    fields = dict(impl="peft", mode=mode, device=str(device), bf16_compute="autocast",
                  tokens_per_s=f"{tokens / median:.1f}", ms_step=f"{median * 1000:.1f}")
    if cuda:
        fields.update(mem_mb=f"{peak_used / 2**20:.0f}", mem_kind="device_used",
                      alloc_peak_mb=f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}",
                      reserved_peak_mb=f"{torch.cuda.max_memory_reserved(device) / 2**20:.0f}")
    else:
        fields.update(mem_mb=f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", mem_kind="host_peak_rss")
    fields.update(trainable=sum(p.numel() for p in params), loss_first=f"{losses[0]:.4f}", loss_last=f"{losses[-1]:.4f}",
                  setup_s=f"{setup:.1f}", steps=args.steps)
    say("result", **fields)

    del model, opt, params, ids, loss
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="folder written by lora-gpu-check make-model")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--modes", default="lora,lora-ckpt,qlora")
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rank", type=int, default=16)
    args = p.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in ("lora", "lora-ckpt", "qlora")]
    if unknown:
        p.error(f"--modes: unknown {', '.join(unknown)}; expected lora, lora-ckpt, qlora")

    absent = missing(["torch", "transformers", "peft"])
    if absent:
        for m in modes:
            say("skip", impl="peft", mode=m, reason='"not installed: ' + "; ".join(absent) + '"')
        return 0
    import torch
    import transformers
    import peft

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        for m in modes:
            say("skip", impl="peft", mode=m, reason=f'"torch {torch.__version__} sees no CUDA device"')
        return 0
    say("info", impl="peft", torch=torch.__version__, cuda=torch.version.cuda, transformers=transformers.__version__,
        peft=peft.__version__, device=(torch.cuda.get_device_name(torch.device(args.device))
                                      if args.device.startswith("cuda") else "cpu"))

    failed = 0
    for mode in modes:
        if mode == "qlora":
            absent = missing(["bitsandbytes"])
            if absent:
                say("skip", impl="peft", mode=mode, reason='"QLoRA needs bitsandbytes, not installed: ' + absent[0] + '"')
                continue
            if not args.device.startswith("cuda"):
                say("skip", impl="peft", mode=mode, reason='"bitsandbytes 4-bit runs on CUDA here"')
                continue
        try:
            run_mode(mode, args, torch, transformers, peft)
        except Exception as e:
            failed += 1
            say("skip", impl="peft", mode=mode, reason=f'"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}"')
        # Outside the handler, so that the exception's frames (and the model they hold) are gone.
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
