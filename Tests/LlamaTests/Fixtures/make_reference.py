#!/usr/bin/env python3
"""Reference outputs of llama.cpp (through the PyPI package llama-cpp-python) on the default
model, for LlamaTests: greedy continuations and logits, made independently of droplorad.

Run from the package root after scripts/fetch-model.sh:
    pip install llama-cpp-python==0.3.36
    python3 Tests/LlamaTests/Fixtures/make_reference.py
writes Tests/LlamaTests/Fixtures/reference_smollm2_q4_1.json.

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

SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
PROMPTS = [
    SYSTEM + "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM + "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM + "<|im_start|>user\nList three prime numbers and explain why they are prime.<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Once upon a time, in a small village by the mountains, there lived",
]


def record(logits, probe_ids):
    order = np.argsort(-logits, kind="stable")[:TOP]
    return {
        "top": [[int(i), float(logits[i])] for i in order],
        "probe": [float(logits[i]) for i in probe_ids],
    }


def main():
    llm = llama_cpp.Llama(model_path=MODEL, n_ctx=1024, n_batch=512, n_threads=2,
                          logits_all=False, verbose=False, seed=0)
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
