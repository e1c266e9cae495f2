#!/usr/bin/env python3
"""Time of a chat request with n choices on a long prompt, for two droplorad builds in one run:
`--before` (each choice evaluates the prompt itself) and `--after` (the prompt is evaluated once
and copied into the other choices' KV slots). Both daemons run side by side, idle while the other
is measured; requests alternate between them, and each request starts its prompt with its own
number so no slot's cached prefix helps it. Best and median of `--reps`, with the load average.

  scripts/bench_choices.py --before /path/to/old/droplorad --after .build/release/droplorad \\
      --model models/SmolLM2-135M-Instruct.Q4_1.gguf

Standard library only (plus scripts/bench_daemon.py's server helpers). Prints a Markdown table.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_daemon import RUNNING, log, post_json, start_droplorad  # noqa: E402

FILLER = (
    "The committee met on Tuesday to review the harbour project. The engineers reported that the "
    "new breakwater is on schedule, the dredging contract needs another month, and the budget for "
    "lighting was cut. The mayor asked for a plan to keep the fishing fleet working during the "
    "construction, and the port authority promised a schedule by the end of the month. "
)


def prompt_text(endpoint, number, tokens):
    """A user message of about `tokens` tokens (checked with /tokenize), starting with `number`."""
    text = f"Request {number}. Summarise these notes in one sentence.\n"
    while True:
        status, body = post_json(endpoint, "/tokenize", {"content": text})
        assert status == 200, body
        if len(json.loads(body)["tokens"]) >= tokens:
            return text
        text += FILLER


def timed_request(endpoint, text, n, max_tokens, seed):
    payload = {
        "messages": [{"role": "user", "content": text}], "n": n, "max_tokens": max_tokens,
        "temperature": 0.8, "seed": seed, "ignore_eos": True,
    }
    t0 = time.perf_counter()
    status, body = post_json(endpoint, "/v1/chat/completions", payload, timeout=600)
    seconds = time.perf_counter() - t0
    assert status == 200, body
    reply = json.loads(body)
    assert len(reply["choices"]) == n and reply["usage"]["completion_tokens"] == n * max_tokens, reply["usage"]
    return seconds, reply["usage"]["prompt_tokens"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="droplorad without the shared prompt evaluation")
    p.add_argument("--after", required=True, help="droplorad with it")
    p.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--context-size", type=int, default=2048)
    p.add_argument("--prompt-tokens", type=int, default=400)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-choices-")
    servers = {}
    try:
        for tag, binary in [("before", args.before), ("after", args.after)]:
            server_args = SimpleNamespace(
                droplorad=binary, model=args.model, threads=args.threads, context_size=args.context_size)
            # n generations at once, so every choice can start together in both builds.
            servers[tag] = start_droplorad(server_args, workdir, args.n, tag)
            servers[tag].wait_healthy()
        times = {(tag, n): [] for tag in servers for n in (1, args.n)}
        loads = []
        number = 0
        prompt_tokens = None
        for rep in range(args.reps):
            for n in (1, args.n):
                for tag, server in servers.items():
                    number += 1
                    text = prompt_text(server.endpoint, number, args.prompt_tokens)
                    seconds, prompt_tokens = timed_request(server.endpoint, text, n, args.max_tokens, seed=number)
                    times[(tag, n)].append(seconds)
                    loads.append(os.getloadavg()[0])
                    log(f"rep {rep} n={n} {tag}: {seconds:.3f} s")
        print(f"Chat request, {prompt_tokens}-token prompt, {args.max_tokens} output tokens per choice, "
              f"temperature 0.8, {args.threads} threads, max_concurrent_generations {args.n}; "
              f"best (median) of {args.reps}, load average {min(loads):.1f}-{max(loads):.1f}.\n")
        print("| n | before, s | after, s | after / before |")
        print("|---|---|---|---|")
        for n in (1, args.n):
            b, a = times[("before", n)], times[("after", n)]
            print(f"| {n} | {min(b):.3f} ({statistics.median(b):.3f}) | {min(a):.3f} ({statistics.median(a):.3f}) "
                  f"| {min(a) / min(b):.2f} |")
    finally:
        for server in list(RUNNING):
            server.stop()


if __name__ == "__main__":
    main()
