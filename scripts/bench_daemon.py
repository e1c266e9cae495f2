#!/usr/bin/env python3
"""Benchmark the droplorad daemon against llama.cpp's llama-server, in one run, on the same GGUFs
and thread count. Driven by scripts/bench_daemon.sh, which builds both servers and makes the
files; standard library only (plus scripts/bench_env.py).

What it measures (every number comes from this run; ratios are against the peer measured in the
same run, with the two servers' runs interleaved; every request sends `ignore_eos`, so both
servers generate max_tokens even on random-weight files):
  1. start-up: exec -> READY=1 on NOTIFY_SOCKET and exec -> first 200 from /health (droplorad);
     exec -> first 200 from /health (llama-server, which answers 503 while it loads);
  2. single-stream decode tokens/s: streamed greedy chat through the socket, client-side from the
     first to the last content chunk, next to /metrics droplorad_decode_tokens_per_second, the
     offline `droplora bench` and llama-server (client-side and its own `timings`);
  3. per model (the default one and a larger one): aggregate generated tokens/s (best of the
     repetitions) and time to first token (p50, p95) for 1, 4 and 8 concurrent streaming clients,
     droplorad at max_concurrent_generations = N beside llama-server -np N (continuous batching);
  4. adapters (droplorad only): N clients on N different random adapters against N clients on
     one of them (and on the base model), per rank and adapters.merge_type.
Prints Markdown tables on stdout; progress goes to stderr.
"""
import argparse
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench_env import cpu_description, load_line

PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain step by step how a bicycle works, describing every part.",
    "Describe the history of the printing press in detail.",
    "Give me a long list of tips for learning to cook at home, and explain each one.",
    "Write an essay about why the ocean matters to life on Earth.",
    "Explain how computers store numbers and text, with examples.",
    "Describe a day in the life of a farmer in the year 1850.",
    "Write a long letter to a friend about a week-long trip to the mountains.",
    "Explain how plants make food from sunlight, for a ten-year-old.",
    "Tell me about the planets of the solar system, one paragraph each.",
    "Write a guide to taking care of a new puppy.",
    "Describe how a city's water supply reaches people's homes.",
]


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def loadavg():
    return os.getloadavg()[0]


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket (the Host header stays "localhost")."""

    def __init__(self, path, timeout=600):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Endpoint:
    def __init__(self, name, unix_path=None, port=None):
        self.name, self.unix_path, self.port = name, unix_path, port

    def connection(self, timeout=600):
        if self.unix_path:
            return UnixHTTPConnection(self.unix_path, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, timeout=5):
        conn = self.connection(timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def stream_chat(endpoint, prompt, max_tokens, model=None):
    """One streamed greedy chat completion (`model`: the adapter to use, None = the server's
    default). `ignore_eos` makes both servers generate max_tokens. Returns client-side timings."""
    request = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    if model is not None:
        request["model"] = model
    body = json.dumps(request)
    result = {"ok": False, "error": None, "chunks": 0, "tokens": None, "server_decode_tps": None}
    conn = endpoint.connection()
    start = time.perf_counter()
    first = last = None
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            result["error"] = f"HTTP {resp.status}: {resp.read()[:200]!r}"
            return result
        for raw in resp:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                result["error"] = f"stream error: {event['error']}"
                return result
            for choice in event.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    t = time.perf_counter()
                    first = first if first is not None else t
                    last = t
                    result["chunks"] += 1
            if event.get("usage"):
                result["tokens"] = event["usage"].get("completion_tokens")
            timings = event.get("timings")  # llama-server's own measurement
            if timings and timings.get("predicted_per_second"):
                result["server_decode_tps"] = timings["predicted_per_second"]
        end = time.perf_counter()
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported
        result["error"] = f"{type(e).__name__}: {e}"
        return result
    finally:
        conn.close()
    if first is None:
        result["error"] = "no content"
        return result
    tokens = result["tokens"] if result["tokens"] is not None else result["chunks"]
    result.update(ok=True, tokens=tokens, ttft=first - start, total=end - start,
                  decode_tps=(tokens - 1) / (last - first) if tokens > 1 and last > first else None)
    return result


def percentile(values, p):
    """Nearest-rank-with-interpolation percentile of a non-empty list."""
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_load(endpoint, clients, prompts_per_client, max_tokens, models=None):
    """`clients` threads, each sending its own sequence of prompts back to back; client i asks
    for adapter models[i] when `models` is given."""
    results = [[] for _ in range(clients)]

    def client(i):
        for j in range(prompts_per_client):
            prompt = PROMPTS[(i * prompts_per_client + j) % len(PROMPTS)]
            results[i].append(stream_chat(endpoint, prompt, max_tokens, models[i] if models else None))

    load = loadavg()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    flat = [r for rs in results for r in rs]
    ok = [r for r in flat if r["ok"]]
    per_client_tps = [sum(r["tokens"] for r in rs if r["ok"]) / sum(r["total"] for r in rs if r["ok"])
                      for rs in results if any(r["ok"] for r in rs)]
    return {
        "wall": wall, "load": load,
        "tokens": sum(r["tokens"] for r in ok),
        "agg_tps": sum(r["tokens"] for r in ok) / wall,
        "ttfts": [r["ttft"] for r in ok],
        "errors": [r["error"] for r in flat if not r["ok"]],
        "requests": len(flat),
        "per_client_tps": per_client_tps,
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUNNING = []  # servers to stop if this script is interrupted or killed


class Server:
    """A server process started by this script; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name, argv, endpoint, workdir, notify=False):
        self.name, self.argv, self.endpoint = name, argv, endpoint
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.ready_s = None
        self.health_s = None
        env = dict(os.environ)
        notify_sock = None
        if notify:
            notify_path = os.path.join(workdir, f"{name}.notify")
            notify_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify_sock.bind(notify_path)
            env["NOTIFY_SOCKET"] = notify_path
        self.log_file = open(self.log_path, "wb")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT, env=env)
        RUNNING.append(self)
        if notify_sock is not None:
            threading.Thread(target=self._read_notify, args=(notify_sock,), daemon=True).start()

    def _read_notify(self, sock):
        sock.settimeout(300)
        try:
            while True:
                msg = sock.recv(4096)
                if b"READY=1" in msg.split(b"\n"):
                    self.ready_s = time.perf_counter() - self.t0
                    return
        except OSError:
            pass
        finally:
            sock.close()

    def wait_healthy(self, timeout=300):
        deadline = self.t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n"
                                   + open(self.log_path, errors="replace").read()[-2000:])
            try:
                status, _ = self.endpoint.get("/health", timeout=2)
                if status == 200:
                    self.health_s = time.perf_counter() - self.t0
                    return self.health_s
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not healthy after {timeout} s; see {self.log_path}")

    def stop(self):
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def start_droplorad(args, workdir, slots, tag, model=None, settings=()):
    """droplorad on a fresh state directory (its adapters directory inside it); `settings` are
    extra `--set key=value` pairs."""
    state = os.path.join(workdir, f"state-{tag}")
    os.makedirs(os.path.join(state, "adapters"), exist_ok=True)
    sock = os.path.join(workdir, f"droplorad-{tag}.sock")
    argv = [args.droplorad, "--model", model or args.model, "--socket", sock, "--state-directory", state,
            "--adapters-directory", os.path.join(state, "adapters"), "--threads", str(args.threads),
            "--context-size", str(args.context_size),
            "--set", f"limits.max_concurrent_generations={slots}", "--set", "limits.queue_limit=64"]
    for kv in settings:
        argv += ["--set", kv]
    server = Server(f"droplorad-{tag}", argv, Endpoint("droplorad", unix_path=sock), workdir, notify=True)
    server.adapters_directory = os.path.join(state, "adapters")
    return server


def start_llama_server(args, workdir, slots, tag, model=None):
    port = free_port()
    # llama-server divides -c among its slots: give each slot droplorad's per-sequence context
    # (8 slots: -c 16384). Continuous batching is on by default.
    argv = [args.llama_server, "-m", model or args.model, "-t", str(args.threads), "-tb", str(args.threads),
            "-np", str(slots), "-c", str(args.context_size * slots),
            "--host", "127.0.0.1", "--port", str(port)]
    return Server(f"llama-server-{tag}", argv, Endpoint("llama-server", port=port), workdir)


def metric_value(endpoint, name):
    status, body = endpoint.get("/metrics")
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def cli_decode_tps(args):
    out = subprocess.run([args.droplora, "bench", "--model", args.model, "--threads", str(args.threads),
                          "--prompt-tokens", "32", "--gen-tokens", str(args.single_tokens),
                          "--repetitions", "1", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["decode_tps"]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(ours, peer, higher_better=True):
    if ours is None or peer is None or ours == 0 or peer == 0:
        return "-"
    return f"{(ours / peer if higher_better else peer / ours):.2f}x"


def load_range(loads):
    return f"{min(loads):.2f}–{max(loads):.2f}" if loads else "-"


def pair(a, b, digits=0):
    return f"{fmt(a, digits)} / {fmt(b, digits)}"


def bench_startup(args, workdir):
    ours_ready, ours_health, peer_health, loads = [], [], [], []
    for rep in range(args.single_repetitions):
        order = ["ours", "peer"] if rep % 2 == 0 else ["peer", "ours"]
        for who in order:
            loads.append(loadavg())
            server = (start_droplorad(args, workdir, 1, f"start{rep}") if who == "ours"
                      else start_llama_server(args, workdir, 1, f"start{rep}"))
            try:
                server.wait_healthy()
                deadline = time.perf_counter() + 5
                while who == "ours" and server.ready_s is None and time.perf_counter() < deadline:
                    time.sleep(0.01)
                if who == "ours":
                    ours_ready.append(server.ready_s)
                    ours_health.append(server.health_s)
                else:
                    peer_health.append(server.health_s)
            finally:
                server.stop()
    log(f"start-up: droplorad READY {ours_ready}, /health {ours_health}; llama-server /health {peer_health}")
    return {"ours_ready": ours_ready, "ours_health": ours_health, "peer_health": peer_health, "loads": loads}


def bench_single(args, ours, peer):
    """Single-stream decode through both servers and the offline CLI, interleaved (default model)."""
    rows = {"socket": [], "metrics": [], "cli": [], "peer": [], "peer_server": [], "ours_tokens": [],
            "peer_tokens": [], "loads": []}
    prompt = PROMPTS[0]
    for rep in range(args.single_repetitions):
        steps = ["ours", "cli", "peer"] if rep % 2 == 0 else ["peer", "cli", "ours"]
        for step in steps:
            rows["loads"].append(loadavg())
            if step == "ours":
                r = stream_chat(ours.endpoint, prompt, args.single_tokens)
                if not r["ok"]:
                    raise RuntimeError(f"droplorad single stream failed: {r['error']}")
                rows["socket"].append(r["decode_tps"])
                rows["ours_tokens"].append(r["tokens"])
                rows["metrics"].append(metric_value(ours.endpoint, "droplorad_decode_tokens_per_second"))
            elif step == "peer":
                r = stream_chat(peer.endpoint, prompt, args.single_tokens)
                if not r["ok"]:
                    raise RuntimeError(f"llama-server single stream failed: {r['error']}")
                rows["peer"].append(r["decode_tps"])
                rows["peer_server"].append(r["server_decode_tps"])
                rows["peer_tokens"].append(r["tokens"])
            else:
                rows["cli"].append(cli_decode_tps(args))
    log(f"single stream: {json.dumps(rows)}")
    return rows


def log_run(label, r):
    log(f"{label}: {r['agg_tps']:.1f} tok/s, {r['tokens']} tokens in {r['wall']:.1f} s, "
        f"ttft p50 {percentile(r['ttfts'], 50) * 1000 if r['ttfts'] else float('nan'):.0f} ms, "
        f"errors {len(r['errors'])}, load {r['load']:.2f}")


def bench_concurrency(args, model, max_tokens, slots, workdir, with_single):
    """Both servers up with `slots` sequences at once; the client counts run interleaved."""
    tag = f"{os.path.basename(model)}-np{slots}"
    ours = start_droplorad(args, workdir, slots, tag, model=model)
    peer = start_llama_server(args, workdir, slots, tag, model=model)
    try:
        ours.wait_healthy()
        peer.wait_healthy()
        for server in (ours, peer):  # warm-up: page in the weights, fill the caches
            r = stream_chat(server.endpoint, PROMPTS[-1], 16)
            if not r["ok"]:
                raise RuntimeError(f"{server.name} warm-up failed: {r['error']}")
        single = bench_single(args, ours, peer) if with_single else None
        runs = {c: {"ours": [], "peer": []} for c in args.clients}
        for rep in range(args.repetitions):
            for clients in args.clients:
                order = [("ours", ours), ("peer", peer)]
                if rep % 2 == 1:
                    order.reverse()
                for who, server in order:
                    r = run_load(server.endpoint, clients, args.prompts_per_client, max_tokens)
                    log_run(f"{os.path.basename(model)} np={slots} clients={clients} rep={rep} "
                            f"{server.endpoint.name}", r)
                    runs[clients][who].append(r)
        return single, runs
    finally:
        ours.stop()
        peer.stop()


def summarize_load(runs):
    """Aggregate tok/s: the best repetition; time to first token over all requests of all
    repetitions."""
    ttfts = [t * 1000 for r in runs for t in r["ttfts"]]
    fairness = [min(r["per_client_tps"]) / max(r["per_client_tps"]) for r in runs if len(r["per_client_tps"]) > 1]
    return {
        "agg_tps": max(r["agg_tps"] for r in runs) if runs else None,
        "ttft_mean": statistics.mean(ttfts) if ttfts else None,
        "ttft_p50": percentile(ttfts, 50) if ttfts else None,
        "ttft_p95": percentile(ttfts, 95) if ttfts else None,
        "errors": sum(len(r["errors"]) for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "error_samples": sorted({e for r in runs for e in r["errors"]})[:3],
        "fairness": min(fairness) if fairness else None,
        "tokens_per_request": statistics.mean([r["tokens"] / max(1, r["requests"] - len(r["errors"])) for r in runs]),
        "loads": [r["load"] for r in runs],
    }


def post_json(endpoint, path, payload, timeout=300):
    conn = endpoint.connection(timeout)
    try:
        conn.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def link_or_copy(src, dst):
    """Into the daemon's adapters directory (it refuses paths outside it, symlinks included)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def bench_adapters(args, workdir):
    """droplorad alone: per adapters.merge_type, N clients on N different adapters of one rank
    against N clients on one of them and on the base model, interleaved. The merged-set cache
    holds all N adapters (merged_cache_size = N), so merged runs measure serving, not re-merging."""
    n = args.adapter_clients
    results = {}
    for merge_type in args.adapter_merge_types:
        tag = f"adapters-{merge_type}"
        ours = start_droplorad(args, workdir, args.slots[-1], tag, settings=(
            f"adapters.merge_type={merge_type}", f"adapters.merged_cache_size={n}"))
        try:
            ours.wait_healthy()
            for rank in args.adapter_ranks:
                for i in range(n):
                    name = f"r{rank}-{i}"
                    link_or_copy(os.path.join(args.adapter_dir, f"{name}.gguf"),
                                 os.path.join(ours.adapters_directory, f"{name}.gguf"))
                    status, body = post_json(ours.endpoint, "/v1/adapters", {"name": name, "path": f"{name}.gguf"})
                    if status not in (200, 201):
                        raise RuntimeError(f"loading adapter {name}: HTTP {status}: {body[:300]!r}")
                    r = stream_chat(ours.endpoint, PROMPTS[-1], 8, name)  # warm-up (and merge)
                    if not r["ok"]:
                        raise RuntimeError(f"warm-up on adapter {name} failed: {r['error']}")
            cases = [("base", None, None)]
            for rank in args.adapter_ranks:
                cases += [(f"{n} adapters", rank, [f"r{rank}-{i}" for i in range(n)]),
                          ("1 adapter", rank, [f"r{rank}-0"] * n)]
            runs = {(label, rank): [] for label, rank, _ in cases}
            for rep in range(args.repetitions):
                for label, rank, models in (cases if rep % 2 == 0 else list(reversed(cases))):
                    r = run_load(ours.endpoint, n, args.prompts_per_client, args.max_tokens, models)
                    log_run(f"adapters merge_type={merge_type} rank={rank} {label} rep={rep}", r)
                    runs[(label, rank)].append(r)
            results[merge_type] = runs
        finally:
            ours.stop()
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--droplorad", required=True)
    p.add_argument("--droplora", required=True)
    p.add_argument("--llama-server", required=True)
    p.add_argument("--model", required=True, help="the default model: start-up, single stream, clients, adapters")
    p.add_argument("--large-model", default=None, help="a larger model for the concurrent clients (none: skipped)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--context-size", type=int, default=2048)
    p.add_argument("--slots", default="8", help="max_concurrent_generations / llama-server -np values")
    p.add_argument("--clients", default="1 4 8", help="concurrent client counts")
    p.add_argument("--max-tokens", type=int, default=128, help="max_tokens of the concurrent clients' requests")
    p.add_argument("--large-max-tokens", type=int, default=64, help="the same on the large model")
    p.add_argument("--single-tokens", type=int, default=128, help="max_tokens of the single-stream decode requests")
    p.add_argument("--prompts-per-client", type=int, default=3)
    p.add_argument("--repetitions", type=int, default=3, help="repetitions of the concurrent-client runs (best reported)")
    p.add_argument("--single-repetitions", type=int, default=3, help="repetitions of start-up and single stream")
    p.add_argument("--adapter-dir", default=None, help="random adapters r{RANK}-{i}.gguf (none: adapter case skipped)")
    p.add_argument("--adapter-ranks", default="16 64")
    p.add_argument("--adapter-clients", type=int, default=8, help="clients, and different adapters, of the adapter case")
    p.add_argument("--adapter-merge-types", default="none q8_0", help="adapters.merge_type values to measure")
    p.add_argument("--command", default=None, help="the command line to print with the results")
    p.add_argument("--json-out", default=None, help="also write the raw measurements here")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, stopping the servers
    args.slots = [int(x) for x in args.slots.split()]
    args.clients = [int(x) for x in args.clients.split()]
    args.adapter_ranks = [int(x) for x in args.adapter_ranks.split()]
    args.adapter_merge_types = args.adapter_merge_types.split()

    workdir = tempfile.mkdtemp(prefix="bench-daemon-")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    log(f"work directory {workdir}; load average {load_before}")
    startup = bench_startup(args, workdir)
    models = [(args.model, args.max_tokens)]
    if args.large_model:
        models.append((args.large_model, args.large_max_tokens))
    single, load_results = None, {}
    for model, max_tokens in models:
        for slots in args.slots:
            s, runs = bench_concurrency(args, model, max_tokens, slots, workdir, with_single=single is None)
            single = single or s
            load_results[(model, slots)] = (max_tokens, runs)
    adapter_results = bench_adapters(args, workdir) if args.adapter_dir else {}
    load_after = os.getloadavg()

    out = []
    out.append(f"Command: `{args.command}`  ")
    out.append(f"Date: {started}; {load_line(load_before, load_after)}  ")
    out.append(f"{cpu_description()}  ")
    out.append(f"threads {args.threads}; context {args.context_size} per sequence (llama-server -c = that × -np); "
               f"temperature 0, `ignore_eos`; {args.single_repetitions} repetition(s) of start-up and single stream "
               f"({args.single_tokens} tokens, {os.path.basename(args.model)}), {args.repetitions} of the concurrent runs, "
               f"the servers interleaved")
    out.append("")
    out.append("Start-up and single stream (median of repetitions; ratio > 1 means droplorad is better):")
    out.append("")
    out.append("| metric | droplorad | llama-server | ratio | load (1 min) |")
    out.append("|---|---|---|---|---|")
    sl = load_range(startup["loads"])
    out.append(f"| exec → READY=1, ms | {fmt(med(startup['ours_ready']) and med(startup['ours_ready']) * 1000)} | - | - | {sl} |")
    oh, ph = med(startup["ours_health"]), med(startup["peer_health"])
    out.append(f"| exec → first 200 from /health, ms | {fmt(oh * 1000)} | {fmt(ph * 1000)} | {ratio(oh, ph, False)} | {sl} |")
    ll = load_range(single["loads"])
    sock, peer = med(single["socket"]), med(single["peer"])
    out.append(f"| decode tok/s, 1 stream, client-side (first → last token) | {fmt(sock)} | {fmt(peer)} | {ratio(sock, peer)} | {ll} |")
    mt, ps = med(single["metrics"]), med(single["peer_server"])
    out.append(f"| decode tok/s, 1 stream, server's own figure (/metrics; llama-server `timings`) | {fmt(mt)} | {fmt(ps)} | {ratio(mt, ps)} | {ll} |")
    cli = med(single["cli"])
    out.append(f"| decode tok/s, offline `droplora bench --gen-tokens {args.single_tokens}` | {fmt(cli)} | - | - | {ll} |")
    out.append(f"| through-socket / offline CLI (client-side; /metrics) | {fmt(sock / cli if sock and cli else None, 3)}; "
               f"{fmt(mt / cli if mt and cli else None, 3)} | - | target ≥ 0.95 | {ll} |")
    out.append(f"| tokens generated per single-stream request | {fmt(med(single['ours_tokens']), 0)} | "
               f"{fmt(med(single['peer_tokens']), 0)} | - | - |")
    out.append("")
    out.append(f"Concurrent streaming clients (each sends {args.prompts_per_client} different chat prompts back to "
               f"back; aggregate = generated tokens / wall time, best of {args.repetitions}; TTFT = time to first "
               f"token over all requests of all repetitions; scaling = aggregate ÷ the same server's 1-client "
               f"aggregate; fairness = slowest ÷ fastest client's tok/s, worst run):")
    out.append("")
    out.append("| model | slots | clients | max_tokens | aggregate tok/s droplorad / llama-server | ratio droplorad/llama-server "
               "| TTFT p50 ms droplorad / llama-server | TTFT p95 ms droplorad / llama-server | scaling droplorad / llama-server "
               "| fairness | tokens/request | failed | load (1 min) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (model, slots), (max_tokens, runs) in load_results.items():
        base = {who: summarize_load(runs[min(args.clients)][who])["agg_tps"] for who in ("ours", "peer")}
        for clients in args.clients:
            a, b = summarize_load(runs[clients]["ours"]), summarize_load(runs[clients]["peer"])
            sa = a["agg_tps"] / base["ours"] if a["agg_tps"] and base["ours"] else None
            sb = b["agg_tps"] / base["peer"] if b["agg_tps"] and base["peer"] else None
            out.append(f"| {os.path.basename(model)} | {slots} | {clients} | {max_tokens} | {pair(a['agg_tps'], b['agg_tps'], 1)} "
                       f"| {ratio(a['agg_tps'], b['agg_tps'])} | {pair(a['ttft_p50'], b['ttft_p50'])} "
                       f"| {pair(a['ttft_p95'], b['ttft_p95'])} | {pair(sa, sb, 2)} | {pair(a['fairness'], b['fairness'], 2)} "
                       f"| {pair(a['tokens_per_request'], b['tokens_per_request'])} "
                       f"| {a['errors']}/{a['requests']} / {b['errors']}/{b['requests']} | {load_range(a['loads'] + b['loads'])} |")
            for who, s in (("droplorad", a), ("llama-server", b)):
                for e in s["error_samples"]:
                    log(f"{who} {os.path.basename(model)} slots={slots} clients={clients} error: {e}")
    if adapter_results:
        n = args.adapter_clients
        out.append("")
        out.append(f"Adapters, droplorad alone ({os.path.basename(args.model)}, max_concurrent_generations "
                   f"{args.slots[-1]}, {n} streaming clients × {args.prompts_per_client} prompts, {args.max_tokens} "
                   f"tokens each; random adapters on all 7 projections of every layer, `droplora adapter random`; "
                   f"merged_cache_size {n}; best of {args.repetitions}, interleaved): {n} clients on {n} different "
                   f"adapters against {n} clients on one adapter of the same rank, and on the base model:")
        out.append("")
        out.append("| merge_type | rank | clients on | aggregate tok/s | ÷ one adapter | ÷ base | TTFT p50 / p95 ms "
                   "| tokens/request | failed | load (1 min) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for merge_type, runs in adapter_results.items():
            base = summarize_load(runs[("base", None)])
            for (label, rank), rs in runs.items():
                s = summarize_load(rs)
                one = summarize_load(runs[("1 adapter", rank)])["agg_tps"] if rank else None
                out.append(f"| {merge_type} | {rank or '-'} | {label} | {fmt(s['agg_tps'])} "
                           f"| {ratio(s['agg_tps'], one) if rank else '-'} | {ratio(s['agg_tps'], base['agg_tps'])} "
                           f"| {pair(s['ttft_p50'], s['ttft_p95'])} | {fmt(s['tokens_per_request'], 0)} "
                           f"| {s['errors']}/{s['requests']} | {load_range(s['loads'])} |")
                for e in s["error_samples"]:
                    log(f"adapters {merge_type} {label} rank {rank} error: {e}")
    print("\n".join(out))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"startup": startup, "single": single,
                       "load": {f"{os.path.basename(m)} np{k}": {"max_tokens": mt, "runs": {str(c): v for c, v in runs.items()}}
                                for (m, k), (mt, runs) in load_results.items()},
                       "adapters": {mt: {f"{label} r{rank}": rs for (label, rank), rs in runs.items()}
                                    for mt, runs in adapter_results.items()}},
                      f, indent=1)


if __name__ == "__main__":
    try:
        main()
    finally:
        for server in list(RUNNING):
            server.stop()
