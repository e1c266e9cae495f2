#!/usr/bin/env python3
"""Independent reference data for the CKernels tests, made with the PyPI `gguf` package
(gguf==0.19.0, numpy 2.x), whose `gguf.quants` re-implements ggml's formats in numpy.

Run from this directory:  python3 make_quant_fixtures.py
Deterministic (fixed seed). Writes, per type T (little-endian raw files):

  T.in.f32    float32 inputs, ROWS x N                     (quantizable types only)
  T.q.bin     quantized rows, ROWS x row_size(T, N) bytes  (gguf.quants.quantize of T.in.f32;
              for K-quants: random bytes with sane fp16 scales, since gguf cannot quantize them)
  T.deq.f32   gguf.quants.dequantize of T.q.bin, ROWS x N float32

and manifest.json listing, per type, ROWS, N and whether T.in.f32 exists.

Q8_1 and Q8_K are activation formats gguf does not implement. Their expected bytes are
computed here in numpy from ggml's documented rules (see q8_1_ref / q8_K_ref below); the
Q8_1 quants and d are exactly gguf's Q8_0 output for the same floats.

fp16.json: float32 inputs (edge cases + random) with numpy's float16 (IEEE round to nearest
even, subnormals kept) and gguf's BF16 conversion (ggml's rounding) of each.
"""
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quantize, dequantize, np_roundf

rng = np.random.default_rng(20261130)
ROWS = 3
manifest = {}


def rows_of_floats(n):
    """ROWS x n float32 rows with awkward blocks mixed in."""
    x = rng.standard_normal((ROWS, n)).astype(np.float32)
    x[1] *= np.float32(0.01)                # small magnitudes
    x[0, :32] = 0.0                         # an all-zero block
    x[0, 32:64] = np.float32(0.75)          # a constant block
    x[2, :32] = np.linspace(-3, 5, 32, dtype=np.float32)  # the extreme at the end, positive
    x[2, 32:64] *= np.float32(300.0)        # large values (still fp16-representable scales)
    return x


def write(name, arr):
    arr = np.ascontiguousarray(arr)
    with open(name, "wb") as f:
        f.write(arr.tobytes())


def q8_1_ref(x):
    """ggml quantize_row_q8_1_ref: the q8_0 rule, plus s = fp16(d_fp32 * sum(qs))."""
    b = x.reshape(-1, 32)
    d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    qs = np_roundf(b * idv).astype(np.int8)
    s = (qs.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d).astype(np.float32)
    out = np.concatenate([d.astype(np.float16).view(np.uint8), s.astype(np.float16).view(np.uint8),
                          qs.view(np.uint8)], axis=1)
    return out.reshape(x.shape[0], -1)


def q8_K_ref(x):
    """ggml quantize_row_q8_K_ref: iscale = -127/max (max = signed element of largest |x|),
    q = min(127, round-half-even(iscale*x)), d = 1/iscale (fp32), bsums = sums of 16."""
    out = []
    for blk in x.reshape(-1, 256):
        imax = int(np.argmax(np.abs(blk)))
        mx = blk[imax]
        if mx == 0:
            out.append(np.zeros(292, np.uint8))
            continue
        iscale = np.float32(-127.0) / mx
        q = np.minimum(np.rint(iscale * blk), 127).astype(np.int8)
        d = np.array([np.float32(1.0) / iscale], np.float32)
        bs = q.astype(np.int16).reshape(16, 16).sum(axis=1).astype(np.int16)
        out.append(np.concatenate([d.view(np.uint8), q.view(np.uint8), bs.view(np.uint8)]))
    return np.stack(out).reshape(x.shape[0], -1)


def kquant_bytes(qtype, n):
    """Random K-quant rows with fp16 scales in a sane range (random bytes there could be NaN)."""
    bs, ts = GGML_QUANT_SIZES[qtype]
    nb = ROWS * n // bs
    raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    d = rng.uniform(1e-4, 2e-2, size=(nb, 1)).astype(np.float16).view(np.uint8)
    dmin = rng.uniform(1e-4, 1e-2, size=(nb, 1)).astype(np.float16).view(np.uint8)
    if qtype == T.Q6_K:
        raw[:, 208:210] = d
    else:
        raw[:, 0:2] = d
        raw[:, 2:4] = dmin
    return raw.reshape(ROWS, -1)


for qtype, n in [(T.F32, 64), (T.F16, 64), (T.BF16, 64), (T.Q4_0, 256), (T.Q4_1, 256),
                 (T.Q5_0, 256), (T.Q5_1, 256), (T.Q8_0, 256), (T.Q8_1, 256), (T.Q8_K, 512)]:
    x = rows_of_floats(n)
    if qtype == T.Q8_1:
        q = q8_1_ref(x)
    elif qtype == T.Q8_K:
        q = q8_K_ref(x)
    else:
        q = quantize(x, qtype).view(np.uint8).reshape(ROWS, -1)
    if qtype in (T.Q8_1, T.Q8_K):
        deq = None  # not implemented by gguf; the tests dequantize these from the bytes' rule
    else:
        deq = dequantize(q, qtype).reshape(ROWS, n).astype(np.float32)
    write(f"{qtype.name}.in.f32", x)
    write(f"{qtype.name}.q.bin", q)
    if deq is not None:
        write(f"{qtype.name}.deq.f32", deq)
    manifest[qtype.name] = {"type": int(qtype), "rows": ROWS, "n": n, "has_input": True,
                            "has_deq": deq is not None}

for qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
    n = 512
    q = kquant_bytes(qtype, n)
    deq = dequantize(q, qtype).reshape(ROWS, n).astype(np.float32)
    write(f"{qtype.name}.q.bin", q)
    write(f"{qtype.name}.deq.f32", deq)
    manifest[qtype.name] = {"type": int(qtype), "rows": ROWS, "n": n, "has_input": False,
                            "has_deq": True}

# fp16 / bf16 conversions of awkward float32 values
edge = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, -70000.0, 1e10,
        2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 3 * 2.0 ** -25, 2.0 ** -26,
        1e-8, 6.1e-5, 6.09e-5, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -11 + 2.0 ** -20,
        0.1, -0.1, 3.14159265, 1.0 / 3.0, 1e-40, -1e-45, 3.4e38, float("inf"), float("-inf")]
vals = np.concatenate([np.array(edge, np.float32),
                       (rng.standard_normal(200) * np.exp(rng.uniform(-20, 12, 200))).astype(np.float32),
                       rng.integers(0, 2 ** 32, 60, dtype=np.uint64).astype(np.uint32).view(np.float32)])
vals = vals[~np.isnan(vals)]
with np.errstate(over="ignore"):
    f16 = vals.astype(np.float16).view(np.uint16)
bf16 = quantize(vals, T.BF16).view(np.uint16)
nan_bits = np.array([0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FBFFFFF], np.uint32)
nan_bf16 = quantize(nan_bits.view(np.float32), T.BF16).view(np.uint16)
with open("fp16.json", "w") as f:
    json.dump({"f32_bits": [int(v) for v in vals.view(np.uint32)],
               "f16_bits": [int(v) for v in f16],
               "bf16_bits": [int(v) for v in bf16],
               "nan_f32_bits": [int(v) for v in nan_bits],
               "nan_bf16_bits": [int(v) for v in nan_bf16]}, f)

with open("manifest.json", "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
