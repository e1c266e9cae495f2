#!/usr/bin/env python3
"""One adapter trained on Gemma 3 270M by `droplora train`, run by three programs: PEFT on the
model transformers dequantizes from the GGUF (the reference: float32), llama.cpp's llama-server
with the GGUF-LoRA (`--lora`), and droplora (`droplora generate --adapter DIR --adapter-type none`,
the adapter applied at each projection as the daemon serves it, and once more with the
GGUF-LoRA file). Greedy tokens are compared with PEFT's up to the first difference, which passes only where
PEFT's top-two logit margin is below --margin (a near-tie: a legitimate flip there changes
everything after it); the base model's own first greedy token is shown to differ, so the
comparison sees the adapter.

    scripts/check_gemma_adapter.py [--model models/gemma-3-270m-q4_k_m.gguf]
        [--adapter DIR (default: train one: 12 steps, rank 4, all seven projections)]
        [--llama-server /work/llama-build/bin/llama-server] [--tokens 24]
        [--write-fixture]   (writes Tests/AdaptersTests/Fixtures/gemma3_parity/)

Needs torch, transformers (with gemma3 GGUF loading), peft and gguf (scripts/train_bench.sh
makes such a venv: .build/peft-venv/bin/python), droplora built in release, and llama-server
(scripts/build-llama.sh builds it). The fixture holds the adapter (PEFT: adapter_config.json,
adapter_model.safetensors.bin) and parity.json: prompt ids, PEFT's greedy ids with their margins
and top-two ids, and the greedy ids of llama.cpp and droplora; Tests/AdaptersTests/
GemmaParityTests.swift checks droplora against it teacher-forced (logit margins, picks).
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


END_OF_TURN = 106  # Gemma's <end_of_turn>: droplora stops on it without listing it


def agreement(reference, margins, tokens, threshold):
    """(tokens equal to PEFT's before the first difference, PEFT's margin there or None).
    A program that stopped at end of turn (listed or not) agrees with all PEFT's tokens to it. A
    difference is allowed only where PEFT's margin is below the threshold (a near-tie)."""
    n = 0
    while n < len(reference) and n < len(tokens) and tokens[n] == reference[n]:
        n += 1
    if n == len(reference):
        return n, None
    # llama.cpp lists the end of turn it stopped on; droplora does not.
    if n == len(tokens) and (reference[n] == END_OF_TURN or tokens[-1:] == [END_OF_TURN]):
        return n, None
    return n, margins[n]


def passes(result, threshold):
    return result[1] is None or result[1] < threshold


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

        failures = 0
        print(f"{'prompt':<34} " + " ".join(f"{k:>20}" for k in ("droplora", "droplora_gguf_lora", "llama_cpp")))
        print("  (tokens equal to PEFT's greedy ones before the first difference, and PEFT's margin there)")
        for case in cases:
            row = f"{case['prompt'][:34]:<34} "
            for key in ("droplora", "droplora_gguf_lora", "llama_cpp"):
                equal, margin = agreement(case["peft"], case["margins"], case[key], args.margin)
                case[f"{key}_agree"] = [equal, margin]
                failures += not passes((equal, margin), args.margin)
                row += f"{f'{equal}' + ('' if margin is None else f' @{margin:.2f}'):>20} "
            print(row)
        differs = sum(case["base"][:1] != case["peft"][:1] for case in cases)
        print(f"differences at a margin of {args.margin} or more: {failures}; "
              f"the adapter changes the first greedy token of {differs} of {len(cases)} prompts")
        ok = failures == 0 and differs > 0

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
