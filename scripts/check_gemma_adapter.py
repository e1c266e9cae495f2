#!/usr/bin/env python3
"""One adapter trained on Gemma 3 270M by `droplora train`, run by three programs: PEFT on the
model transformers dequantizes from the GGUF (the reference: float32), llama.cpp's llama-server
with the GGUF-LoRA (`--lora`), and droplora (`droplora generate --adapter DIR --adapter-type none`,
the adapter applied at each projection as the daemon serves it, and once more with the
GGUF-LoRA file). Greedy tokens are compared with PEFT's up to the first position where PEFT's
top-two logit margin is below --margin (past a near-tie, a legitimate flip changes everything
after it); the base model's own greedy tokens are shown to differ, so the comparison sees the
adapter.

    scripts/check_gemma_adapter.py [--model models/gemma-3-270m-q4_k_m.gguf]
        [--adapter DIR (default: train one: 12 steps, rank 4, all seven projections)]
        [--llama-server /work/llama-build/bin/llama-server] [--tokens 24]
        [--write-fixture]   (writes Tests/AdaptersTests/Fixtures/gemma3_parity/)

Needs torch, transformers (with gemma3 GGUF loading), peft and gguf (scripts/train_bench.sh
makes such a venv: .build/peft-venv/bin/python), droplora built in release, and llama-server
(scripts/build-llama.sh builds it). The fixture holds the adapter (PEFT: adapter_config.json,
adapter_model.safetensors.bin) and parity.json: prompt ids, PEFT's greedy ids with their margins
and top-two ids, and the greedy ids of llama.cpp and droplora; Tests/AdaptersTests/
GemmaParityTests.swift checks droplora's logits against it teacher-forced.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIXTURE = os.path.join(ROOT, "Tests", "AdaptersTests", "Fixtures", "gemma3_parity")
PROMPTS = [
    "Which group does the word \"otter\" belong to: fruit, animal, color or tool? Answer with the group only.",
    "Word: lavender. Is it a fruit, an animal, a color or a tool? Answer with the group only.",
    "Classify \"chainsaw\" as fruit, animal, color or tool. Answer with the group only.",
    "Write a short poem about the sea.",
    "What is the capital of France?",
    "List three things people do on a rainy day.",
]


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def train_adapter(args, work):
    """A short droplora run on the learn_task.py data (all seven projections, so every PEFT and
    GGUF-LoRA tensor name is exercised)."""
    data = os.path.join(work, "train.jsonl")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import learn_task
    rows = learn_task.samples({g: w[:12] for g, w in learn_task.GROUPS.items()}, learn_task.PROMPTS)
    with open(data, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    out = os.path.join(work, "adapter")
    run([args.droplora, "train", "--model", args.model, "--data", data, "--out", out, "--steps", "12",
         "--batch-size", "8", "--micro-batch", "8", "--max-seq-len", "96", "--rank", "4", "--lr", "2e-3",
         "--warmup", "2", "--targets", "q,k,v,o,gate,up,down", "--threads", str(args.threads)])
    return out


def droplora_generate(args, prompt, adapter=None, adapter_type="none"):
    command = [args.droplora, "generate", "--model", args.model, "--temperature", "0", "--max-tokens",
               str(args.tokens), "--threads", str(args.threads), "--ctx-size", "512", "--json"]
    if adapter:
        command += ["--adapter", adapter, "--adapter-type", adapter_type]
    result = json.loads(run(command + [prompt]))
    return result["prompt_tokens"], result["tokens"]


def peft_greedy(model, prompt_ids, count):
    """Greedy ids, top-two logit margins and second ids (float32, full recompute each step)."""
    ids = list(prompt_ids)
    tokens, margins, seconds = [], [], []
    with torch.no_grad():
        for _ in range(count):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
            top = torch.topk(logits, 2)
            tokens.append(int(top.indices[0]))
            seconds.append(int(top.indices[1]))
            margins.append(float(top.values[0] - top.values[1]))
            ids.append(tokens[-1])
    return tokens, margins, seconds


class LlamaServer:
    def __init__(self, binary, model, lora, threads):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        command = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port), "-c", "512",
                   "-t", str(threads), "-np", "1", "--no-webui"]
        if lora:
            command += ["--lora", lora]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.process.poll() is not None:
                    sys.exit("llama-server exited:\n" + self.process.stderr.read())
                time.sleep(0.5)
        sys.exit("llama-server did not come up")

    def greedy(self, prompt_ids, count):
        body = json.dumps({"prompt": prompt_ids, "n_predict": count, "temperature": 0, "top_k": 1,
                           "cache_prompt": False, "return_tokens": True}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/completion", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as r:
            return json.loads(r.read())["tokens"]

    def close(self):
        self.process.terminate()
        self.process.wait()


def agreement(reference, margins, tokens, threshold):
    """(positions compared, positions equal): PEFT's tokens up to the first margin below the
    threshold (or the end); after a disagreement the rest is not compared."""
    compared = 0
    for want, margin, got in zip(reference, margins, tokens + [None] * len(reference)):
        if margin < threshold:
            break
        compared += 1
        if got != want:
            return compared, compared - 1
    return compared, compared


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf"))
    parser.add_argument("--droplora", default=os.path.join(ROOT, ".build", "release", "droplora"))
    parser.add_argument("--llama-server", default="/work/llama-build/bin/llama-server")
    parser.add_argument("--adapter", help="a PEFT directory droplora wrote (default: train one)")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--margin", type=float, default=0.5, help="logits; compare only above it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-fixture", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = tempfile.mkdtemp(prefix="gemma-parity-")
    try:
        adapter = args.adapter or train_adapter(args, work)
        lora_gguf = os.path.join(work, "adapter.gguf")
        run([args.droplora, "adapter", "convert", "--model", args.model, adapter, lora_gguf])

        from peft import PeftModel
        from transformers import AutoModelForCausalLM
        path = os.path.realpath(args.model)
        base = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                    torch_dtype=torch.float32)
        base.eval()
        cases = []
        for prompt in PROMPTS:
            prompt_ids, _ = droplora_generate(args, prompt)
            base_tokens, _, _ = peft_greedy(base, prompt_ids, args.tokens)
            cases.append({"prompt": prompt, "prompt_tokens": prompt_ids, "base": base_tokens})
        model = PeftModel.from_pretrained(base, adapter)
        model.eval()
        for case in cases:
            case["peft"], case["margins"], case["second"] = peft_greedy(model, case["prompt_tokens"], args.tokens)
            case["droplora"] = droplora_generate(args, case["prompt"], adapter)[1]
            case["droplora_gguf_lora"] = droplora_generate(args, case["prompt"], lora_gguf)[1]
        server = LlamaServer(args.llama_server, args.model, lora_gguf, args.threads)
        try:
            for case in cases:
                case["llama_cpp"] = server.greedy(case["prompt_tokens"], args.tokens)
        finally:
            server.close()

        totals = {}
        print(f"{'prompt':<34} {'base≠':>5} " + " ".join(f"{k:>20}" for k in
                                                       ("droplora", "droplora_gguf_lora", "llama_cpp")))
        for case in cases:
            compared_base, equal_base = agreement(case["peft"], case["margins"], case["base"], args.margin)
            row = f"{case['prompt'][:34]:<34} {compared_base - equal_base:>5} "
            for key in ("droplora", "droplora_gguf_lora", "llama_cpp"):
                compared, equal = agreement(case["peft"], case["margins"], case[key], args.margin)
                case[f"{key}_agree"] = [equal, compared]
                total = totals.setdefault(key, [0, 0])
                total[0] += equal
                total[1] += compared
                row += f"{f'{equal}/{compared}':>20} "
            print(row)
        print("totals (equal/compared clear-margin tokens):",
              ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in totals.items()))
        differs = sum(case["base"] != case["peft"] for case in cases)
        print(f"the adapter changes the greedy output of {differs} of {len(cases)} prompts")
        ok = all(v[0] == v[1] for v in totals.values()) and differs > 0

        if args.write_fixture:
            os.makedirs(FIXTURE, exist_ok=True)
            shutil.copy(os.path.join(adapter, "adapter_config.json"), os.path.join(FIXTURE, "adapter_config.json"))
            shutil.copy(os.path.join(adapter, "adapter_model.safetensors"),
                        os.path.join(FIXTURE, "adapter_model.safetensors.bin"))
            with open(os.path.join(FIXTURE, "parity.json"), "w") as f:
                json.dump({"model": os.path.basename(args.model), "margin": args.margin, "cases": cases}, f)
                f.write("\n")
            print("wrote", FIXTURE)
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
