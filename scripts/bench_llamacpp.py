#!/usr/bin/env python3
"""The llama.cpp side of scripts/bench.sh: the same measurements as `droplora bench`, on the
same model file, prompt token ids and thread count, through llama-cpp-python (llama.cpp's C
API), with llama.cpp's default settings (f16 KV cache). Wall-clock times around each eval
call; Python's overhead per call (tens of microseconds, about 1 % of a decode step) is charged
to llama.cpp. Prints one JSON object like `droplora bench --json`.
"""
import argparse
import json
import os
import time

import llama_cpp
import numpy as np


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-ids", required=True, help="file of whitespace-separated token ids")
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()

    prompt = [int(t) for t in open(args.prompt_ids).read().split()]
    baseline_rss = peak_rss_bytes()  # the interpreter, numpy and the llama.cpp library
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=len(prompt) + args.gen_tokens + 1,
                          n_batch=len(prompt), n_ubatch=len(prompt), n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False)
    best_prefill = best_ttft = best_decode = float("inf")
    for _ in range(args.repetitions):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        prefilled = time.perf_counter()
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        best_prefill = min(best_prefill, prefilled - start)
        best_ttft = min(best_ttft, time.perf_counter() - start)

        llm.reset()
        llm.eval([prompt[0]])
        start = time.perf_counter()
        for _ in range(args.gen_tokens):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        best_decode = min(best_decode, time.perf_counter() - start)

    print(json.dumps({
        "engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})",
        "threads": args.threads,
        "prompt_tokens": len(prompt),
        "gen_tokens": args.gen_tokens,
        "prefill_tps": len(prompt) / best_prefill,
        "decode_tps": args.gen_tokens / best_decode,
        "ttft_ms": best_ttft * 1000,
        "peak_rss_mib": peak_rss_bytes() / 1048576,
        "baseline_rss_mib": baseline_rss / 1048576,
        "model_mib": os.path.getsize(args.model) / 1048576,
    }))


if __name__ == "__main__":
    main()
