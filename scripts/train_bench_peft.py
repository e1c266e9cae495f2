#!/usr/bin/env python3
"""The PyTorch + PEFT side of scripts/train_bench.sh: the same LoRA training step on the same
model (transformers loads the GGUF dequantized to float32), CPU, float32, same rank, alpha,
targets, dropout, batch, micro-batch (gradient accumulation) and sequence length, AdamW.
Tokens are random ids with loss at every position (droplora's bench samples have loss on all
but the first few positions). Prints one JSON object: tokens/s over all steps (as droplora
train reports it) and the process's peak RSS. With --autocast-bf16 the forward pass and loss
run under torch.autocast(device_type="cpu", dtype=torch.bfloat16) (LoRA weights, gradients and
AdamW stay float32; backward runs outside the context) and the JSON gains "autocast": "bf16".

    python3 scripts/train_bench_peft.py --seq-len 256 --micro-batch 1 --threads 2 --steps 3
"""
import argparse
import contextlib
import json
import os
import resource
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
HF_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
            "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--targets", default="q,k,v,up,down")
    parser.add_argument("--autocast-bf16", action="store_true",
                        help="run the forward pass and loss under torch.autocast(cpu, bfloat16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    path = os.path.realpath(args.model)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32)
    config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.05, bias="none",
                        target_modules=[HF_NAMES[t] for t in args.targets.split(",")], task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4, weight_decay=0)
    vocabulary = model.config.vocab_size
    if args.autocast_bf16:
        autocast = lambda: torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext

    tokens = 0
    start = time.perf_counter()
    for _ in range(args.steps):
        optimizer.zero_grad(set_to_none=True)
        for _ in range(args.batch_size // args.micro_batch):
            ids = torch.randint(0, vocabulary, (args.micro_batch, args.seq_len))
            with autocast():
                loss = model(input_ids=ids, labels=ids).loss * args.micro_batch / args.batch_size
            loss.backward()
            tokens += ids.numel()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
    seconds = time.perf_counter() - start
    result = {"tokens_per_second": tokens / seconds, "tokens": tokens, "seconds": seconds,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.autocast_bf16:
        result["autocast"] = "bf16"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
