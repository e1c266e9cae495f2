#!/usr/bin/env python3
"""Reference logits and greedy tokens from llama.cpp for small random-weight models of each
family shape (qwen3, Llama 3.1 RoPE scaling), recorded as small JSON fixtures.

The weights are the ones Tests/TinyModelSupport/TinyModel.swift writes for the same spec: the
same SplitMix64 stream, drawn tensor by tensor in the same order with the same scales, so the
Swift tests rebuild the identical GGUF themselves and only the JSON is committed. The GGUF
written here additionally carries a real tokenizer (copied from the default SmolLM2 model),
which llama.cpp needs to load the file; the Swift side evaluates the recorded token ids.

Usage: scripts/make_family_fixtures.py [--tokenizer models/SmolLM2-135M-Instruct.Q4_1.gguf]
         [--out Tests/LlamaTests/Fixtures/families] [--work /tmp/family-fixtures]
Needs the `gguf`, `numpy` and `llama_cpp` (llama-cpp-python 0.3.36) Python packages.
"""
import argparse
import json
import os

import numpy as np
import gguf

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)

# name -> spec; the keys mirror TinyModelSpec's fields.
SPECS = {
    "qwen3-f32": dict(architecture="qwen3", layers=2, embedding=64, heads=4, kvHeads=2, feedForward=96,
                      ropeBase=1000000.0, epsilon=1e-6, tiedOutput=True, queryKeyNorm=True,
                      ropeFrequencyFactors=False, matrixType="f32", embeddingType="f32", seed=21),
    "qwen3-f16": dict(architecture="qwen3", layers=2, embedding=64, heads=4, kvHeads=1, feedForward=96,
                      ropeBase=1000000.0, epsilon=1e-6, tiedOutput=False, queryKeyNorm=True,
                      ropeFrequencyFactors=False, matrixType="f16", embeddingType="f16", seed=22),
    "llama3-rope-freqs-f32": dict(architecture="llama", layers=2, embedding=64, heads=4, kvHeads=2,
                                  feedForward=96, ropeBase=500000.0, epsilon=1e-5, tiedOutput=True,
                                  queryKeyNorm=False, ropeFrequencyFactors=True, matrixType="f32",
                                  embeddingType="f32", seed=23),
    "llama3-rope-freqs-f16": dict(architecture="llama", layers=2, embedding=64, heads=4, kvHeads=2,
                                  feedForward=96, ropeBase=500000.0, epsilon=1e-5, tiedOutput=False,
                                  queryKeyNorm=False, ropeFrequencyFactors=True, matrixType="f16",
                                  embeddingType="f16", seed=24),
}
PROMPT = "The quick brown fox jumps over the lazy dog. Once upon a time"
GREEDY = 32
LOGIT_STRIDE = 997  # every 997th vocabulary entry of every prompt position is recorded
TOP = 8            # plus each position's top entries


class SplitMix:
    """TinyModel.swift's SplitMix64 stream, vectorised: draw k is mix(seed + k·golden)."""

    def __init__(self, seed):
        self.seed = np.uint64(seed)
        self.drawn = 0

    def symmetric(self, count):
        k = np.arange(self.drawn + 1, self.drawn + count + 1, dtype=np.uint64)
        self.drawn += count
        z = self.seed + k * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        z = z ^ (z >> np.uint64(31))
        return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -52 - 1


def copy_tokenizer(reader, writer):
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        if name == "tokenizer.chat_template":
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            sub = field.types[1]
            if sub == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(name, values, kind, sub_type=sub)
        elif kind == gguf.GGUFValueType.STRING:
            writer.add_key_value(name, bytes(field.parts[field.data[0]]).decode(), kind)
        else:
            writer.add_key_value(name, field.parts[field.data[0]].tolist()[0], kind)


def write_model(path, spec, reader, vocabulary):
    arch = spec["architecture"]
    w = gguf.GGUFWriter(path, arch)
    w.add_uint32(f"{arch}.block_count", spec["layers"])
    w.add_uint32(f"{arch}.embedding_length", spec["embedding"])
    w.add_uint32(f"{arch}.feed_forward_length", spec["feedForward"])
    w.add_uint32(f"{arch}.attention.head_count", spec["heads"])
    w.add_uint32(f"{arch}.attention.head_count_kv", spec["kvHeads"])
    w.add_float32(f"{arch}.rope.freq_base", spec["ropeBase"])
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", spec["epsilon"])
    w.add_uint32(f"{arch}.context_length", 256)
    copy_tokenizer(reader, w)

    rng = SplitMix(spec["seed"])
    d, f = spec["embedding"], spec["feedForward"]
    hd = d // spec["heads"]
    q_dim, kv_dim = spec["heads"] * hd, spec["kvHeads"] * hd

    def add(name, kind, rows, columns, scale, offset=0.0):
        values = (offset + scale * rng.symmetric(rows * columns)).astype(np.float32)
        values = values.reshape(rows, columns) if rows > 1 else values
        w.add_tensor(name, values.astype(np.float16) if kind == "f16" else values)

    add("token_embd.weight", spec["embeddingType"], vocabulary, d, 1.0)
    add("output_norm.weight", "f32", 1, d, 0.2, 1.0)
    if not spec["tiedOutput"]:
        add("output.weight", spec["matrixType"], vocabulary, d, 0.3)
    if spec["ropeFrequencyFactors"]:
        add("rope_freqs.weight", "f32", 1, hd // 2, 9.0, 10.0)
    t = spec["matrixType"]
    for l in range(spec["layers"]):
        add(f"blk.{l}.attn_norm.weight", "f32", 1, d, 0.2, 1.0)
        add(f"blk.{l}.ffn_norm.weight", "f32", 1, d, 0.2, 1.0)
        add(f"blk.{l}.attn_q.weight", t, q_dim, d, 0.25)
        add(f"blk.{l}.attn_k.weight", t, kv_dim, d, 0.25)
        add(f"blk.{l}.attn_v.weight", t, kv_dim, d, 0.25)
        add(f"blk.{l}.attn_output.weight", t, d, q_dim, 0.15)
        add(f"blk.{l}.ffn_gate.weight", t, f, d, 0.2)
        add(f"blk.{l}.ffn_up.weight", t, f, d, 0.2)
        add(f"blk.{l}.ffn_down.weight", t, d, f, 0.15)
        if spec["queryKeyNorm"]:
            add(f"blk.{l}.attn_q_norm.weight", "f32", 1, hd, 0.3, 1.0)
            add(f"blk.{l}.attn_k_norm.weight", "f32", 1, hd, 0.3, 1.0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_llama_cpp(path, vocabulary):
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=path, n_ctx=256, n_batch=256, n_threads=2, logits_all=True, verbose=False,
        type_k=0, type_v=0, flash_attn=False, seed=0)  # type 0 = F32 KV cache
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=False)
    llm.eval(prompt)
    scores = np.array(llm.scores[: len(prompt)], dtype=np.float64)
    assert scores.shape == (len(prompt), vocabulary)
    positions = []
    for row in scores:
        top = np.argsort(-row)[:TOP]
        ids = sorted(set(range(0, vocabulary, LOGIT_STRIDE)) | set(int(i) for i in top))
        positions.append({"ids": ids, "logits": [float("%.7g" % row[i]) for i in ids]})
    greedy, margins = [], []
    for _ in range(GREEDY):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        best = np.argsort(-row)[:2]
        greedy.append(int(best[0]))
        margins.append(float("%.4g" % (row[best[0]] - row[best[1]])))
        llm.eval([int(best[0])])
    return prompt, positions, greedy, margins


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default=os.path.join(root, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--out", default=os.path.join(root, "Tests/LlamaTests/Fixtures/families"))
    parser.add_argument("--work", default="/tmp/family-fixtures")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    reader = gguf.GGUFReader(args.tokenizer)
    vocabulary = len(reader.fields["tokenizer.ggml.tokens"].data)
    import llama_cpp
    for name, spec in SPECS.items():
        path = os.path.join(args.work, f"{name}.gguf")
        write_model(path, spec, reader, vocabulary)
        prompt, positions, greedy, margins = run_llama_cpp(path, vocabulary)
        fixture = {
            "made_by": "scripts/make_family_fixtures.py",
            "reference": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, F32 KV cache, no flash attention",
            "spec": dict(spec, vocabulary=vocabulary),
            "prompt": PROMPT,
            "prompt_tokens": prompt,
            "positions": positions,
            "greedy": greedy,
            "greedy_margins": margins,
        }
        with open(os.path.join(args.out, f"{name}.json"), "w") as out:
            json.dump(fixture, out, separators=(",", ":"))
        print(f"{name}: {len(prompt)} prompt tokens, greedy {greedy[:8]}..., smallest margin {min(margins):.4f}")


if __name__ == "__main__":
    main()
