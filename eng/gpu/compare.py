#!/usr/bin/env python3
"""Reads the `result`/`skip` lines that lora-gpu-check bench and bench_peft.py print (from the files named, or
stdin) and prints one table: per mode, tokens/s and memory of each side and their ratios (.NET / PEFT)."""

import shlex
import sys

MODES = ["lora", "lora-ckpt", "qlora"]
IMPLS = {"dotnet-torch": ".NET (torch backend)", "peft": "PyTorch + PEFT"}


def parse(lines):
    results, skips = {}, {}
    for line in lines:
        words = shlex.split(line.strip()) if line.startswith(("result ", "skip ")) else []
        if not words:
            continue
        fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        key = (fields.get("impl"), fields.get("mode"))
        (results if words[0] == "result" else skips)[key] = fields
    return results, skips


def num(fields, key):
    try:
        value = float(fields[key])
        return value if value == value else None  # NaN -> None
    except (KeyError, TypeError, ValueError):
        return None


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def cell(value, digits=0):
    return "-" if value is None else f"{value:.{digits}f}"


def main():
    lines = []
    for path in sys.argv[1:] or ["-"]:
        lines += (sys.stdin if path == "-" else open(path, encoding="utf-8")).read().splitlines()
    results, skips = parse(lines)
    kinds = {f.get("mem_kind") for f in results.values()}
    mem = "device MB" if kinds == {"device_used"} else "peak RSS MB" if kinds == {"host_peak_rss"} else "mem MB"
    header = ["mode", ".NET tok/s", "PEFT tok/s", "tok/s .NET/PEFT", f".NET {mem}", f"PEFT {mem}", "mem .NET/PEFT",
              "PEFT alloc MB", ".NET loss0", "PEFT loss0"]
    rows = []
    for mode in MODES:
        d, p = results.get(("dotnet-torch", mode)), results.get(("peft", mode))
        if d is None and p is None:
            continue
        d, p = d or {}, p or {}
        rows.append([mode, cell(num(d, "tokens_per_s")), cell(num(p, "tokens_per_s")),
                     ratio(num(d, "tokens_per_s"), num(p, "tokens_per_s")),
                     cell(num(d, "mem_mb")), cell(num(p, "mem_mb")), ratio(num(d, "mem_mb"), num(p, "mem_mb")),
                     cell(num(p, "alloc_peak_mb")), d.get("loss_first", "-"), p.get("loss_first", "-")])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if not rows:
        print("(no benchmark results)")
    for (impl, mode), f in sorted(skips.items(), key=lambda kv: (kv[0][0] or "", MODES.index(kv[0][1]) if kv[0][1] in MODES else 9)):
        print(f"not measured: {IMPLS.get(impl, impl)} {mode}: {f.get('reason', '?')}")
    for key in sorted(set(results)):
        f = results[key]
        print(f"  {IMPLS.get(key[0], key[0])} {key[1]}: ms/step {f.get('ms_step')}, trainable {f.get('trainable')}, "
              f"setup {f.get('setup_s')} s, loss {f.get('loss_first')} -> {f.get('loss_last')} over {f.get('steps')} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
