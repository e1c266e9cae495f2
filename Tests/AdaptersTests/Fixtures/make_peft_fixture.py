#!/usr/bin/env python3
"""Makes the PEFT fixture for Tests/AdaptersTests/PEFTFixtureTests.swift.

An adapter made by Hugging Face PEFT itself, and PEFT's logits with it, so the Swift side is
tested against an independent implementation (this is what proves the q/k row order):

  1. transformers builds the HF model from the default GGUF (it dequantizes the Q4_1 weights
     to fp32 and un-permutes q/k back to HF order), in float32 on the CPU;
  2. PEFT wraps it in a LoRA (r=4, lora_alpha=8, use_rslora=True, all seven projections) whose
     A and B are drawn from a seeded normal distribution (B non-zero, so the adapter matters)
     and rounded to fp16 (the file stores fp16; the logits use the same rounded values);
  3. save_pretrained writes adapter_config.json + adapter_model.safetensors, kept here as
     peft_adapter/adapter_config.json and peft_adapter/adapter_model.safetensors.bin
     (.bin because the repository ignores *.safetensors), re-saved as fp16 by safetensors;
  4. for each prompt (token ids) it records, at every position, the logits with and without the
     adapter at the `probe_ids` and at the adapter's top 16 ids, in peft_logits.json.

Run (CPU; torch, transformers, peft, safetensors, gguf from PyPI):
    python3 Tests/AdaptersTests/Fixtures/make_peft_fixture.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import os
import sys
import tempfile

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPTS = [
    [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365],
    [504, 3575, 282, 4649, 314, 2114, 30, 378, 1345, 28, 339],
]
PROBE_IDS = list(range(0, 49152, 1531))[:32]
TOP = 16


def main():
    torch.manual_seed(1234)
    path = os.path.realpath(MODEL)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32
    )
    model.eval()

    def logits_of(m, ids):
        with torch.no_grad():
            return m(torch.tensor([ids])).logits[0].float()

    base_logits = [logits_of(model, p) for p in PROMPTS]

    config = LoraConfig(
        r=4, lora_alpha=8, use_rslora=True, lora_dropout=0.0, bias="none",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False, task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:
                param.copy_((torch.randn_like(param) / param.shape[1] ** 0.5).half().float())
            elif "lora_B" in name:
                param.copy_((torch.randn_like(param) * 0.02).half().float())
    peft_model.eval()
    adapter_logits = [logits_of(peft_model, p) for p in PROMPTS]

    out_dir = os.path.join(HERE, "peft_adapter")
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        peft_model.save_pretrained(tmp)
        with open(os.path.join(tmp, "adapter_config.json")) as f:
            saved = json.load(f)
        # PEFT records the local directory the base came from; name the published base instead.
        saved["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
        with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
        tensors = load_file(os.path.join(tmp, "adapter_model.safetensors"))
        tensors = {k: v.half().contiguous() for k, v in tensors.items()}
        save_file(tensors, os.path.join(out_dir, "adapter_model.safetensors.bin"), metadata={"format": "pt"})

    cases = []
    for ids, base, adapted in zip(PROMPTS, base_logits, adapter_logits):
        steps = []
        for t in range(len(ids)):
            top = torch.topk(adapted[t], TOP).indices.tolist()
            wanted = PROBE_IDS + [i for i in top if i not in PROBE_IDS]
            steps.append({
                "ids": wanted,
                "adapter": [float(adapted[t, i]) for i in wanted],
                "base": [float(base[t, i]) for i in wanted],
            })
        cases.append({"prompt_tokens": ids, "steps": steps})
    with open(os.path.join(HERE, "peft_logits.json"), "w") as f:
        json.dump({
            "made_by": "make_peft_fixture.py",
            "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__,
                         "transformers": __import__("transformers").__version__},
            "cases": cases,
        }, f)
    print("wrote", out_dir, "and peft_logits.json")


if __name__ == "__main__":
    main()
