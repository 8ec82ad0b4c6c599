#!/usr/bin/python3
"""Independent reference for NF4 quantization: writes tests/fixtures/nf4/nf4.safetensors.

Run:  /usr/bin/python3 tests/reference/make_nf4_fixture.py      (numpy; ~1 s)

Implements, from the definitions alone (QLoRA, Dettmers et al. 2023, and the scheme documented
in src/Microsoft.ML.Lora/Tensors/Nf4.cs), NF4 block quantization with and without double
quantization, vectorised over whole arrays in numpy: nothing is shared with the C# code.
All F32 arithmetic is done on float32 arrays of equal shape (IEEE, correctly rounded, so the
C# scalar and AVX-512 code must agree bit for bit); nearest codes by a float64 argmin over
the 16 table values (first index on a tie). Never hand-edit the generated fixture.

Definitions (block 64 over the row-major flattened elements, double-quant group 256 blocks):
  absmax[b]   = max |x| in block b                     (0 for an all-zero block)
  v           = f32(x / absmax[b])                     (0 where absmax is 0)
  code        = argmin_i |v - NF4[i]|, lowest i on a tie
  dequant     = f32(NF4[code] * absmax[b])
  mean        = f32(sum_f64(absmax in block order) / blocks)
  d[b]        = f32(absmax[b] - mean);  scale[g] = max |d| over group g
  q[b]        = round_half_even(f64(d) / f64(scale) * 127)   (0 where scale is 0), int8
  absmax'[b]  = max(0, f32(f32(f32(q * scale) / 127) + mean))
  dequant_dq  = f32(NF4[code] * absmax'[b])
"""

import os
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

SCRIPT = "tests/reference/make_nf4_fixture.py"
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "nf4")
BLOCK, GROUP = 64, 256

NF4 = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)


def quantize(x):
    """x: float32 array of any shape -> dict of the NF4 state (single and double quantization)."""
    flat = x.reshape(-1)
    n = flat.size
    blocks = -(-n // BLOCK)
    padded = np.zeros(blocks * BLOCK, dtype=np.float32)  # zeros never raise a block's absmax
    padded[:n] = flat
    xb = padded.reshape(blocks, BLOCK)
    absmax = np.abs(xb).max(axis=1)
    zero = absmax == 0
    denom = np.where(zero, np.float32(1), absmax)[:, None] * np.ones((1, BLOCK), dtype=np.float32)
    v = np.where(zero[:, None], np.float32(0), xb / denom).astype(np.float32)
    codes = np.abs(v.astype(np.float64)[..., None] - NF4.astype(np.float64)).argmin(axis=-1)
    full_absmax = absmax[:, None] * np.ones((1, BLOCK), dtype=np.float32)
    dequant = (NF4[codes] * full_absmax).reshape(-1)[:n]

    total = 0.0
    for a in absmax.tolist():
        total += a
    mean = np.float32(total / blocks)
    d = (absmax - np.full_like(absmax, mean)).astype(np.float32)
    groups = -(-blocks // GROUP)
    dpad = np.zeros(groups * GROUP, dtype=np.float32)
    dpad[:blocks] = d
    scales = np.abs(dpad.reshape(groups, GROUP)).max(axis=1)
    scale_of = np.repeat(scales, GROUP)[:blocks]
    ratio = np.where(scale_of == 0, 0.0, d.astype(np.float64) / np.where(scale_of == 0, 1, scale_of).astype(np.float64))
    q = np.round(ratio * 127.0).astype(np.int8)  # np.round rounds half to even
    rebuilt = (q.astype(np.float32) * scale_of).astype(np.float32)
    rebuilt = (rebuilt / np.full_like(rebuilt, 127)).astype(np.float32)
    rebuilt = (rebuilt + np.full_like(rebuilt, mean)).astype(np.float32)
    clamped = int((rebuilt < 0).sum())
    rebuilt = np.where(rebuilt < 0, np.float32(0), rebuilt).astype(np.float32)
    full_rebuilt = rebuilt[:, None] * np.ones((1, BLOCK), dtype=np.float32)
    dequant_dq = (NF4[codes] * full_rebuilt).reshape(-1)[:n]

    # Self-checks: the argmin agrees with a midpoint search; zero blocks come back as zeros.
    mids = (NF4[:-1].astype(np.float64) + NF4[1:].astype(np.float64)) / 2
    assert (np.searchsorted(mids, v.astype(np.float64), side="left") == codes).all()
    assert (dequant.reshape(-1)[np.repeat(zero, BLOCK)[:n]] == 0).all()
    assert np.abs(q).max() <= 127
    return {
        "codes": codes.reshape(-1)[:n].astype(np.uint8).reshape(x.shape),
        "absmax": absmax.astype(np.float32),
        "dequant": dequant.astype(np.float32).reshape(x.shape),
        "dq.qabsmax": q,
        "dq.scales": scales.astype(np.float32),
        "dq.mean": np.array(mean, dtype=np.float32),
        "dq.absmax": rebuilt,
        "dq.dequant": dequant_dq.astype(np.float32).reshape(x.shape),
    }, clamped, int(zero.sum())


def small_input():
    """(8, 203): odd rows (blocks and code bytes straddle rows), a partial last block, zero blocks,
    outliers, a block whose largest magnitude is negative, and every table midpoint ±1 ulp."""
    rng = np.random.RandomState(20261122)
    x = (rng.standard_normal((8, 203)) * 0.02).astype(np.float32)
    flat = x.reshape(-1)
    flat[64:128] = 0  # block 1
    flat[832:896] = 0  # block 13
    flat[3 * 203 + 17] = 0.9
    flat[6 * 203 + 150] = -1.3
    flat[5 * 64 + 10] = -0.25  # block 5: largest magnitude negative
    # Block 20 has absmax exactly 1, so v = x: the F32 nearest each midpoint and its neighbours.
    base = 20 * BLOCK
    flat[base:base + BLOCK] = (rng.uniform(-0.9, 0.9, BLOCK)).astype(np.float32)
    flat[base] = 1.0
    mids = (NF4[:-1].astype(np.float64) + NF4[1:].astype(np.float64)) / 2
    for i, m in enumerate(mids):
        f = np.float32(m)
        flat[base + 1 + 3 * i] = f
        flat[base + 2 + 3 * i] = np.nextafter(f, np.float32(2))
        flat[base + 3 + 3 * i] = np.nextafter(f, np.float32(-2))
    return x


def multi_input():
    """(65, 260) = 265 blocks: two double-quant groups (256 + 9), block scales over two decades,
    and all-zero blocks in both groups (their offsets are -mean, so rebuilt absmax may clamp at 0)."""
    rng = np.random.RandomState(7)
    x = rng.standard_normal((65, 260)).astype(np.float32)
    flat = x.reshape(-1)
    scales = (10.0 ** rng.uniform(-2, 0, -(-flat.size // BLOCK))).astype(np.float32)
    for b, s in enumerate(scales):
        flat[b * BLOCK:(b + 1) * BLOCK] *= s
    for b in (3, 100, 257, 263):
        flat[b * BLOCK:(b + 1) * BLOCK] = 0
    return x


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors = {}
    notes = {}
    for name, x in (("small", small_input()), ("multi", multi_input())):
        state, clamped, zero_blocks = quantize(x)
        notes[f"{name}.clamped_absmax"] = clamped
        notes[f"{name}.zero_blocks"] = zero_blocks
        tensors[f"{name}.input"] = ("F32", list(x.shape), x.astype("<f4").tobytes())
        for key, value in state.items():
            dtype = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8"}[value.dtype]
            tensors[f"{name}.{key}"] = (dtype, list(value.shape), value.astype(value.dtype.newbyteorder("<")).tobytes())
    metadata = {"script": SCRIPT, "numpy": np.__version__, "block": BLOCK, "group": GROUP, **notes}
    path = os.path.join(OUT, "nf4.safetensors")
    write_safetensors(path, tensors, metadata)
    back, _ = read_safetensors(path)
    assert set(back) == set(tensors)
    assert notes["multi.clamped_absmax"] > 0, "the multi case should exercise the clamp of a negative rebuilt absmax"
    print(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes; {notes}")


if __name__ == "__main__":
    main()
