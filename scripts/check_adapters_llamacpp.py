#!/usr/bin/env python3
"""Checks droplora's adapter files against llama.cpp (llama-cpp-python) and PEFT's logits.

    droplora adapter convert Tests/AdaptersTests/Fixtures/peft_adapter/adapter_model.safetensors.bin /tmp/fixture.gguf
    droplora adapter merge --adapter /tmp/fixture.gguf --out /tmp/merged.gguf
    python3 scripts/check_adapters_llamacpp.py models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/fixture.gguf /tmp/merged.gguf

Prints mean |logit - PEFT logit| at the fixture's recorded ids for: the base alone, the base
with the GGUF-LoRA applied by llama.cpp, and the merged GGUF loaded by llama.cpp; then greedy
text from the merged GGUF, to show llama.cpp loads and generates with it.
"""
import json
import os
import sys

import numpy as np
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "Tests", "AdaptersTests", "Fixtures", "peft_logits.json")


def errors(llm, reference, key):
    total, count = 0.0, 0
    for case in reference["cases"]:
        llm.reset()
        llm.eval(case["prompt_tokens"])
        scores = np.array(llm.scores[: len(case["prompt_tokens"])])
        for t, step in enumerate(case["steps"]):
            for i, want in zip(step["ids"], step[key]):
                total += abs(float(scores[t, i]) - want)
                count += 1
    return total / count


def main():
    base, lora, merged = sys.argv[1:4]
    reference = json.load(open(FIXTURE))
    opts = dict(n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    plain = Llama(model_path=base, **opts)
    print("llama.cpp base vs PEFT base:        mean |Δ| %.4f" % errors(plain, reference, "base"))
    print("llama.cpp base vs PEFT adapter:     mean |Δ| %.4f (adapter ignored)" % errors(plain, reference, "adapter"))
    with_lora = Llama(model_path=base, lora_path=lora, **opts)
    print("llama.cpp + GGUF-LoRA vs PEFT:      mean |Δ| %.4f" % errors(with_lora, reference, "adapter"))
    m = Llama(model_path=merged, **opts)
    print("llama.cpp merged GGUF vs PEFT:      mean |Δ| %.4f" % errors(m, reference, "adapter"))
    m.reset()
    out = m.create_completion("The capital of France is", max_tokens=16, temperature=0)
    print("merged GGUF generates:", repr(out["choices"][0]["text"]))


if __name__ == "__main__":
    main()
