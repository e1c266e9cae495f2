#!/usr/bin/env python3
"""Driver of scripts/bench.sh: runs `droplora bench` and llama.cpp's `llama-bench` interleaved
(one repetition of each in turn, best of N), each under /usr/bin/time -v for its peak RSS, on
every file and thread count, and prints one Markdown table with decode as a fraction of the
bandwidth-bound rate (measured read bandwidth / bytes of weights read per token)."""
import argparse, json, os, re, subprocess, sys, time

from gguf import GGUFReader

from bench_env import cpu_description, load_line

ap = argparse.ArgumentParser()
ap.add_argument("--droplora", required=True)
ap.add_argument("--llama-bench", required=True)
ap.add_argument("--membw", required=True)
ap.add_argument("--files", nargs="+", required=True)
ap.add_argument("--threads", nargs="+", type=int, required=True)
ap.add_argument("--prompt-ids", required=True)
ap.add_argument("--prompt-tokens", type=int, required=True)
ap.add_argument("--gen-tokens", type=int, required=True)
ap.add_argument("--repetitions", type=int, required=True)
ap.add_argument("--command", required=True)
ap.add_argument("--json-out")
a = ap.parse_args()


def timed(cmd):
    """Run cmd under /usr/bin/time -v; return (stdout, peak RSS MiB)."""
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 1024
    return p.stdout, rss


def bytes_per_token(path):
    """Bytes of weights a single-token decode reads: every tensor but the embedding table, of
    which it reads one row; the table again in full when it doubles as the output projection."""
    r = GGUFReader(path)
    sizes = {t.name: int(t.n_bytes) for t in r.tensors}
    total = sum(sizes.values()) - sizes.get("token_embd.weight", 0)
    if "output.weight" not in sizes:
        total += sizes.get("token_embd.weight", 0)
    return total


def bandwidth(threads):
    out = subprocess.run([a.membw, str(threads), "1024", "8"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["read_gb_per_s"] * 1e9


load_before = os.getloadavg()
bw = {t: bandwidth(t) for t in a.threads}
results = []
for path in a.files:
    bpt = bytes_per_token(path)
    for t in a.threads:
        best = {"ours_pp": 0, "ours_tg": 0, "peer_pp": 0, "peer_tg": 0, "ours_rss": 0, "peer_rss": 0}
        for _ in range(a.repetitions):
            out, rss = timed([a.droplora, "bench", "--model", path, "--threads", str(t),
                              "--prompt-ids", a.prompt_ids, "--gen-tokens", str(a.gen_tokens),
                              "--repetitions", "1", "--json",
                              # llama-bench keeps K and V in f16 unless told otherwise: the same here,
                              # so peak RSS compares like with like.
                              "--kv-cache-type", "f16"])
            o = json.loads(out)
            best["ours_pp"] = max(best["ours_pp"], o["prefill_tps"])
            best["ours_tg"] = max(best["ours_tg"], o["decode_tps"])
            best["ours_rss"] = max(best["ours_rss"], rss)
            out, rss = timed([a.llama_bench, "-m", path, "-t", str(t), "-p", str(a.prompt_tokens),
                              "-n", str(a.gen_tokens), "-r", "1", "-o", "json"])
            for test in json.loads(out):
                key = "peer_pp" if test["n_prompt"] > 0 else "peer_tg"
                best[key] = max(best[key], test["avg_ts"])
            best["peer_rss"] = max(best["peer_rss"], rss)
        bound = bw[t] / bpt
        best.update(file=os.path.basename(path), threads=t, bytes_per_token=bpt, bandwidth=bw[t],
                    ours_frac=best["ours_tg"] / bound, peer_frac=best["peer_tg"] / bound)
        results.append(best)
        print(f"{best['file']} t={t}: pp {best['ours_pp']:.1f} vs {best['peer_pp']:.1f}, "
              f"tg {best['ours_tg']:.1f} vs {best['peer_tg']:.1f}", file=sys.stderr, flush=True)
load_after = os.getloadavg()

print(f"Command: `{a.command}`  ")
print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load_line(load_before, load_after)}  ")
print(f"{cpu_description()}  ")
print("Read bandwidth (scripts/membw.c, best of 8 passes over 1 GiB): "
      + ", ".join(f"{t} thread(s) {bw[t] / 1e9:.1f} GB/s" for t in a.threads) + "  ")
print(f"pp{a.prompt_tokens} / tg{a.gen_tokens} tok/s, best of {a.repetitions} interleaved runs; KV cache f16 in both; "
      "peak RSS from /usr/bin/time -v; bw frac = decode tok/s ÷ (bandwidth ÷ weight bytes read per token)\n")
print("| file | thr | pp droplora | pp llama.cpp | pp ratio | tg droplora | tg llama.cpp | tg ratio "
      "| tg bw frac droplora | tg bw frac llama.cpp | RSS MiB droplora | RSS MiB llama.cpp |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in results:
    print(f"| {r['file']} | {r['threads']} | {r['ours_pp']:.1f} | {r['peer_pp']:.1f} | "
          f"{r['ours_pp'] / r['peer_pp']:.2f}x | {r['ours_tg']:.1f} | {r['peer_tg']:.1f} | "
          f"{r['ours_tg'] / r['peer_tg']:.2f}x | {r['ours_frac']:.2f} | {r['peer_frac']:.2f} | "
          f"{r['ours_rss']:.0f} | {r['peer_rss']:.0f} |")
print("\nratio > 1: droplorad faster. Weight bytes per token: "
      + ", ".join(sorted({f"{r['file']} {r['bytes_per_token'] / 2**20:.0f} MiB" for r in results})))
if a.json_out:
    with open(a.json_out, "w") as f:
        json.dump(results, f, indent=1)
