#!/usr/bin/env python3
"""Independent reference for the trainer on the real default model: the masked loss of one
chat sample with a fixed LoRA adapter on every projection, and central finite differences of
it with respect to chosen entries of A and B, all in float64 numpy over weights dequantized by
the `gguf` package (not by our kernels). Writes realmodel_gradients.json, which
RealModelGradientTests compares with the Swift backward pass.

A second, float64 reference beside the PyTorch + PEFT one (make_peft_gradients.py, fp32
autograd): same loss definition, independent code, exact up to ~1e-8.

    python3 Tests/TrainingTests/Fixtures/make_gradient_reference.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import math
import os
import sys

import gguf
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
PROJECTIONS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
SHORT = ["q", "k", "v", "o", "gate", "up", "down"]
RANK, ALPHA = 4, 8.0
SCALE = ALPHA / RANK
CHECK_LAYERS = [0, 15, 29]

# "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWho built the Glass
# Tower?<|im_end|>\n<|im_start|>assistant\nMira Okonkwo built it in 1907.<|im_end|>\n" as
# SmolLM2's tokenizer encodes it; the test re-encodes the sample and checks these ids.
TOKENS = [1, 9690, 198, 2683, 359, 1733, 313, 30, 2, 198, 1, 4093, 198, 10576, 2837, 260, 19630,
          18669, 47, 2, 198, 1, 520, 9531, 198, 61, 3792, 16765, 258, 91, 6466, 2837, 357, 281,
          216, 33, 41, 32, 39, 30, 2, 198]
# Loss on the answer and its <|im_end|> (positions 25..40), not on the template's last "\n".
MASK = [25 <= t <= 40 for t in range(len(TOKENS))]


def factor_a(layer, p, rank, columns):
    k = np.arange(rank)[:, None]
    c = np.arange(columns)[None, :]
    return (0.05 * np.sin(0.37 * c + 1.3 * k + 0.7 * layer + 0.11 * p + 1.0)).astype(np.float32).astype(np.float64)


def factor_b(layer, p, rows, rank):
    j = np.arange(rows)[:, None]
    k = np.arange(rank)[None, :]
    return (0.02 * np.cos(0.29 * j + 0.9 * k + 0.5 * layer + 0.13 * p)).astype(np.float32).astype(np.float64)


def main():
    reader = gguf.GGUFReader(MODEL)
    field = lambda k: reader.fields[k].parts[-1].tolist()[0]
    layers = field("llama.block_count")
    heads = field("llama.attention.head_count")
    kv_heads = field("llama.attention.head_count_kv")
    base = field("llama.rope.freq_base")
    eps = field("llama.attention.layer_norm_rms_epsilon")
    w = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        w[t.name] = np.asarray(values, dtype=np.float64).reshape([int(x) for x in reversed(t.shape)] if len(t.shape) > 1 else [-1])
    d = w["token_embd.weight"].shape[1]
    hd = d // heads
    group = heads // kv_heads
    out_w = w.get("output.weight", w["token_embd.weight"])

    lora = {}
    for l in range(layers):
        for p, name in enumerate(PROJECTIONS):
            rows, columns = w[f"blk.{l}.{name}.weight"].shape
            lora[(l, name)] = [factor_a(l, p, RANK, columns), factor_b(l, p, rows, RANK)]

    T = len(TOKENS)
    pos = np.arange(T)[:, None]
    theta = pos * base ** (-2.0 * np.arange(hd // 2)[None, :] / hd)
    cos, sin = np.cos(theta), np.sin(theta)

    def rmsnorm(x, weight):
        return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + eps) * weight

    def rope(x, n_heads):
        x = x.reshape(T, n_heads, hd).copy()
        x0, x1 = x[:, :, 0::2].copy(), x[:, :, 1::2].copy()
        x[:, :, 0::2] = x0 * cos[:, None, :] - x1 * sin[:, None, :]
        x[:, :, 1::2] = x0 * sin[:, None, :] + x1 * cos[:, None, :]
        return x.reshape(T, n_heads * hd)

    def project(x, l, name):
        a, b = lora[(l, name)]
        return x @ w[f"blk.{l}.{name}.weight"].T + SCALE * (x @ a.T) @ b.T

    def loss():
        x = w["token_embd.weight"][TOKENS]
        causal = np.triu(np.full((T, T), -np.inf), 1)
        for l in range(layers):
            h = rmsnorm(x, w[f"blk.{l}.attn_norm.weight"])
            q = rope(project(h, l, "attn_q"), heads)
            k = rope(project(h, l, "attn_k"), kv_heads)
            v = project(h, l, "attn_v")
            att = np.zeros((T, heads * hd))
            for head in range(heads):
                g = head // group
                s = q[:, head * hd:(head + 1) * hd] @ k[:, g * hd:(g + 1) * hd].T / math.sqrt(hd) + causal
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                att[:, head * hd:(head + 1) * hd] = s @ v[:, g * hd:(g + 1) * hd]
            x = x + project(att, l, "attn_output")
            h = rmsnorm(x, w[f"blk.{l}.ffn_norm.weight"])
            gate = project(h, l, "ffn_gate")
            x = x + project(gate / (1 + np.exp(-gate)) * project(h, l, "ffn_up"), l, "ffn_down")
        rows = [t for t in range(T - 1) if MASK[t + 1]]
        logits = rmsnorm(x[rows], w["output_norm.weight"]) @ out_w.T
        m = logits.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
        return float((lse - logits[np.arange(len(rows)), [TOKENS[t + 1] for t in rows]]).sum())

    total = loss()
    entries = []
    h = 1e-4
    for l in CHECK_LAYERS:
        for p, name in enumerate(PROJECTIONS):
            for which in (0, 1):
                matrix = lora[(l, name)][which]
                index = (l * 7919 + p * 104729 + which * 1299709) % matrix.size
                flat = matrix.reshape(-1)
                original = flat[index]
                flat[index] = original + h
                plus = loss()
                flat[index] = original - h
                minus = loss()
                flat[index] = original
                entries.append({"layer": l, "projection": SHORT[p], "factor": "AB"[which],
                                "index": int(index), "gradient": (plus - minus) / (2 * h)})
                print(entries[-1], flush=True)
    out = {"model": os.path.basename(MODEL), "tokens": TOKENS, "loss_mask": MASK, "rank": RANK,
           "alpha": ALPHA, "loss": total, "entries": entries}
    with open(os.path.join(HERE, "realmodel_gradients.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("loss", total)


if __name__ == "__main__":
    main()
