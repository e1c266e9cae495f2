#!/usr/bin/env python3
"""Reference outputs of llama.cpp (through the PyPI package llama-cpp-python) on the default
model, for LlamaTests: greedy continuations and logits, made independently of droplorad.

Run from the package root after scripts/fetch-model.sh:
    pip install llama-cpp-python==0.3.36
    python3 Tests/LlamaTests/Fixtures/make_reference.py
writes Tests/LlamaTests/Fixtures/reference_smollm2_q4_1.json;
    python3 Tests/LlamaTests/Fixtures/make_reference.py --gemma3 PATH
(after scripts/fetch-gemma3.sh PATH) writes reference_gemma3_270m_q4_k_m.json from Gemma 3 270M
with Gemma's turn prompts (BOS added) and one prompt longer than its 512-position sliding
window, plus token ids of a few texts with and without special-token parsing.

For every prompt: the prompt's token ids (llama.cpp's tokenizer, special tokens parsed, so
the Swift test feeds exactly these ids and tests the forward pass alone), then STEPS greedy
steps evaluated one token at a time (decode). For the prompt's last position and every
step it records the top TOP logits (id, value) and the logits at a fixed seeded sample of
PROBE vocabulary ids, so the comparison covers the whole distribution, not only the head.
"""
import json
import os
import random
import sys

import llama_cpp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_smollm2_q4_1.json")
STEPS = 24
TOP = 10
PROBE = 64
# The KV cache in f32, as droplorad keeps it (llama.cpp defaults to f16, which alone moves
# logits by a few tenths over a long prompt).
KV_F32 = 0  # GGML_TYPE_F32

SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
PROMPTS = [
    SYSTEM + "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM + "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM + "<|im_start|>user\nList three prime numbers and explain why they are prime.<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "The capital of France is",
]


def record(logits, probe_ids):
    order = np.argsort(-logits, kind="stable")[:TOP]
    return {
        "top": [[int(i), float(logits[i])] for i in order],
        "probe": [float(logits[i]) for i in probe_ids],
    }


GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_gemma3_270m_q4_k_m.json")
LONG = " ".join(f"Item {i}: the {['red', 'blue', 'green'][i % 3]} box holds {i * 7 % 31} stones." for i in range(60))
GEMMA3_PROMPTS = [
    "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nWrite a haiku about the sea.<end_of_turn>\n<start_of_turn>model\n",
    "<bos>The capital of France is",
    "<bos>1, 2, 3, 4, 5, 6, 7, 8,",
    "<bos>" + LONG + " Which box holds the most stones? The",
]
TOKENIZE_TEXTS = [
    "Hello world, <start_of_turn>user ünïcode  spaces\n\n\ttabs",
    "<bos><start_of_turn>model\nSure! 1234567 — 東京 🙂 <end_of_turn>",
    "   leading spaces and trailing   ",
    "def f(x):\n    return x**2  # comment",
]


def gemma3(path):
    llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_batch=512, n_threads=2,
                          logits_all=True, verbose=False, seed=0,
                          type_k=KV_F32, type_v=KV_F32)
    vocab = llm.n_vocab()
    probe_ids = sorted(random.Random(1234).sample(range(vocab), PROBE))
    cases = []
    for text in GEMMA3_PROMPTS:
        llm.reset()
        prompt = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.eval(prompt)
        steps, generated = [], []
        for _ in range(STEPS):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            steps.append(record(logits, probe_ids))
            token = int(np.argmax(logits))
            generated.append(token)
            llm.eval([token])
        cases.append({"prompt": text, "prompt_tokens": prompt, "greedy_tokens": generated, "steps": steps})
    tokenized = [{"text": t,
                  "plain": llm.tokenize(t.encode(), add_bos=True, special=False),
                  "special": llm.tokenize(t.encode(), add_bos=True, special=True)} for t in TOKENIZE_TEXTS]
    data = {
        "made_by": "Tests/LlamaTests/Fixtures/make_reference.py --gemma3",
        "reference": f"llama-cpp-python {llama_cpp.__version__} (llama.cpp, CPU, 2 threads, F32 KV cache)",
        "model_sha256": GEMMA3_SHA256,
        "probe_ids": probe_ids,
        "cases": cases,
        "tokenized": tokenized,
    }
    with open(GEMMA3_OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print(f"wrote {GEMMA3_OUT}: {len(cases)} prompts x {STEPS} steps, "
          f"longest prompt {max(len(c['prompt_tokens']) for c in cases)} tokens", file=sys.stderr)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--gemma3":
        return gemma3(sys.argv[2])
    llm = llama_cpp.Llama(model_path=MODEL, n_ctx=1024, n_batch=512, n_threads=2,
                          logits_all=True, verbose=False, seed=0,
                          type_k=KV_F32, type_v=KV_F32)
    vocab = llm.n_vocab()
    probe_ids = sorted(random.Random(1234).sample(range(vocab), PROBE))
    cases = []
    for text in PROMPTS:
        llm.reset()
        prompt = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.eval(prompt)
        steps = []
        generated = []
        for _ in range(STEPS):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            steps.append(record(logits, probe_ids))
            token = int(np.argmax(logits))
            generated.append(token)
            llm.eval([token])
        cases.append({"prompt": text, "prompt_tokens": prompt, "greedy_tokens": generated,
                      "steps": steps})
    data = {
        "made_by": "Tests/LlamaTests/Fixtures/make_reference.py",
        "reference": f"llama-cpp-python {llama_cpp.__version__} (llama.cpp, CPU, 2 threads)",
        "model_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "probe_ids": probe_ids,
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print(f"wrote {OUT}: {len(cases)} prompts x {STEPS} steps", file=sys.stderr)


if __name__ == "__main__":
    main()
