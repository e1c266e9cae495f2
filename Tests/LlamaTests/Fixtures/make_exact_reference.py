#!/usr/bin/env python3
"""Exact logits of the default model: a float64 numpy forward pass over weights dequantized
by the PyPI `gguf` package (no activation quantization, no fp16 anywhere), teacher-forced on
the prompts and greedy tokens of reference_smollm2_q4_1.json (made by make_reference.py with
llama.cpp). It lets LlamaTests measure how far droplorad and llama.cpp each are from exact
arithmetic: both quantize activations to 8 bits for their dot products, and the test asks that
droplorad be no further from exact than llama.cpp is.

Run from the package root after scripts/fetch-model.sh and make_reference.py:
    pip install gguf==0.19.0 numpy
    python3 Tests/LlamaTests/Fixtures/make_exact_reference.py
writes Tests/LlamaTests/Fixtures/reference_exact_smollm2_q4_1.json: for every case and step,
the exact logits at the ids that the llama.cpp fixture records (its top ids, then probe ids).
"""
import json
import os

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMA_CPP = os.path.join(HERE, "reference_smollm2_q4_1.json")
OUT = os.path.join(HERE, "reference_exact_smollm2_q4_1.json")


def main():
    reader = GGUFReader(MODEL)
    tensors = {t.name: t for t in reader.tensors}
    field = lambda key: reader.fields[key].contents()

    def weight(name):
        t = tensors[name]
        values = dequantize(t.data, t.tensor_type).astype(np.float64)
        return values.reshape([int(x) for x in reversed(t.shape)]) if len(t.shape) > 1 else values.reshape(-1)

    layers = field("llama.block_count")
    heads = field("llama.attention.head_count")
    kv_heads = field("llama.attention.head_count_kv")
    dim = field("llama.embedding_length")
    hd = dim // heads
    eps = field("llama.attention.layer_norm_rms_epsilon")
    base = field("llama.rope.freq_base")
    group = heads // kv_heads
    W = {name: weight(name) for name in tensors}
    embedding = W["token_embd.weight"]
    inv_freq = base ** (-np.arange(0, hd, 2) / hd)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(v, n_heads, positions):
        # llama.cpp's "normal" RoPE: pairs (2i, 2i+1); GGUF q/k rows are permuted for it.
        v = v.reshape(len(positions), n_heads, hd).copy()
        angle = positions[:, None] * inv_freq[None, :]
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
        a, b = v[..., 0::2].copy(), v[..., 1::2].copy()
        v[..., 0::2] = a * cos - b * sin
        v[..., 1::2] = a * sin + b * cos
        return v

    def forward(tokens, cache):
        """Appends tokens to the cache; returns the last position's logits."""
        start = cache["n"]
        positions = np.arange(start, start + len(tokens))
        x = embedding[tokens]
        for l in range(layers):
            h = rms(x, W[f"blk.{l}.attn_norm.weight"])
            q = rope(h @ W[f"blk.{l}.attn_q.weight"].T, heads, positions)
            k = rope(h @ W[f"blk.{l}.attn_k.weight"].T, kv_heads, positions)
            v = (h @ W[f"blk.{l}.attn_v.weight"].T).reshape(len(tokens), kv_heads, hd)
            cache["k"][l] = np.concatenate([cache["k"][l], k]) if start else k
            cache["v"][l] = np.concatenate([cache["v"][l], v]) if start else v
            keys, values = cache["k"][l], cache["v"][l]
            out = np.zeros((len(tokens), heads, hd))
            for head in range(heads):
                s = q[:, head] @ keys[:, head // group].T / np.sqrt(hd)
                s = s + np.triu(np.full(s.shape, -np.inf), start + 1)
                p = np.exp(s - s.max(-1, keepdims=True))
                out[:, head] = (p / p.sum(-1, keepdims=True)) @ values[:, head // group]
            x = x + out.reshape(len(tokens), dim) @ W[f"blk.{l}.attn_output.weight"].T
            h = rms(x, W[f"blk.{l}.ffn_norm.weight"])
            g = h @ W[f"blk.{l}.ffn_gate.weight"].T
            u = h @ W[f"blk.{l}.ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ W[f"blk.{l}.ffn_down.weight"].T
        cache["n"] += len(tokens)
        return rms(x[-1], W["output_norm.weight"]) @ embedding.T

    reference = json.load(open(LLAMA_CPP))
    cases = []
    for case in reference["cases"]:
        cache = {"n": 0, "k": [None] * layers, "v": [None] * layers}
        logits = forward(case["prompt_tokens"], cache)
        steps = []
        for step, token in zip(case["steps"], case["greedy_tokens"]):
            ids = [int(i) for i, _ in step["top"]] + reference["probe_ids"]
            steps.append([float(logits[i]) for i in ids])
            logits = forward([token], cache)
        cases.append({"steps": steps})
    with open(OUT, "w") as f:
        json.dump({"made_by": "Tests/LlamaTests/Fixtures/make_exact_reference.py",
                   "reference": "float64 numpy over gguf-dequantized weights",
                   "cases": cases}, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
