#!/usr/bin/env python3
"""Decode speed through the daemon's socket while it trains in the background, against the
same requests while it is idle (issue target: at least 70 % of idle decode), and how much of
the idle time training uses (its tokens/s between requests). Standard library only.

    scripts/bench_streamed_training.py [--threads 2] [--requests 5] [--max-tokens 128]
"""
import argparse, http.client, json, os, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(sock, method, path, body=None):
    c = UnixConnection(sock)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    payload = r.read()
    c.close()
    return r.status, payload


def decode_rate(sock, prompt, max_tokens):
    """Client-side decode tokens/s of one streamed greedy chat (first to last token)."""
    c = UnixConnection(sock)
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, "model": "base"}
    c.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    first = last = None
    tokens = 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if any(ch.get("delta", {}).get("content") for ch in chunk.get("choices", [])):
            now = time.monotonic()
            first = first or now
            last = now
    c.close()
    return (tokens - 1) / (last - first) if first and last and last > first else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dlbench-")
    sock = os.path.join(work, "d.sock")
    daemon = subprocess.Popen(
        [os.path.join(ROOT, ".build/release/droplorad"), "--model", a.model, "--socket", sock,
         "--state-directory", work + "/state", "--adapters-directory", work + "/adapters",
         "--threads", str(a.threads), "--set", "training.batch_size=8", "--set", "training.micro_batch=2",
         "--set", "training.max_sequence_length=256", "--set", "training.publish_every=1000000"],
        stdout=subprocess.DEVNULL, stderr=open(work + "/log", "w"))
    try:
        for _ in range(600):
            if os.path.exists(sock):
                try:
                    if call(sock, "GET", "/health")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.05)
        prompts = ["Write a long story about a lighthouse keeper.", "Explain how rain forms, in detail.",
                   "Describe a walk through an old city.", "Tell me about the history of bread."]
        decode_rate(sock, "warm up", 8)
        idle = [decode_rate(sock, prompts[i % len(prompts)], a.max_tokens) for i in range(a.requests)]

        call(sock, "POST", "/v1/adapters", {"name": "bench", "rank": 16, "pruning_rate": 0.3})
        lines = [json.dumps({"id": f"b{i}", "messages": [
            {"role": "user", "content": f"Question {i}: what is {i} plus {i}? Explain your reasoning briefly."},
            {"role": "assistant", "content": f"{i} plus {i} is {2 * i}, because adding a number to itself doubles it."}]})
            for i in range(4000)]
        status, _ = call(sock, "POST", "/v1/adapters/bench/samples", "\n".join(lines).encode())
        assert status == 200, status
        time.sleep(5)  # let training get going
        before = json.loads(call(sock, "GET", "/v1/adapters/bench/training")[1])
        busy = [decode_rate(sock, prompts[i % len(prompts)], a.max_tokens) for i in range(a.requests)]
        time.sleep(10)  # idle: training alone
        after = json.loads(call(sock, "GET", "/v1/adapters/bench/training")[1])
        load = os.getloadavg()[0]
        best_idle, best_busy = max(idle), max(busy)
        mean_idle, mean_busy = sum(idle) / len(idle), sum(busy) / len(busy)
        print(f"Measured {time.strftime('%Y-%m-%d')} with `scripts/bench_streamed_training.py --threads {a.threads} "
              f"--requests {a.requests} --max-tokens {a.max_tokens}` (load average {load:.2f})\n")
        print("| measurement | value |\n|---|---|")
        print(f"| decode tok/s through the socket, idle daemon (mean / best of {a.requests}) | {mean_idle:.1f} / {best_idle:.1f} |")
        print(f"| decode tok/s while training has a backlog (mean / best) | {mean_busy:.1f} / {best_busy:.1f} |")
        print(f"| ratio (mean) | {mean_busy / mean_idle:.2f} (target >= 0.70) |")
        print(f"| training steps during the decode runs / in the 10 s after | "
              f"{after['step'] - before['step']} total; training tok/s when idle {after.get('tokens_per_second', 0):.0f} |")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
