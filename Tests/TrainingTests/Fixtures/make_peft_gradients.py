#!/usr/bin/env python3
"""PyTorch + PEFT reference for the trainer on the real default model: the masked loss of one
chat sample and the gradient of every LoRA A and B, with the adapter that PEFT itself made for
the adapters tests (Tests/AdaptersTests/Fixtures/peft_adapter: r=4, lora_alpha=8, rsLoRA, all
seven projections, non-zero B). Writes peft_gradients.json, which PEFTGradientTests compares
with the Swift backward pass.

transformers loads the GGUF dequantized to float32 (its own dequantizer, and it un-permutes the
q/k rows back to Hugging Face order); PEFT adds the LoRA branches; torch's autograd gives the
gradients. The gradients are therefore in Hugging Face row order: q and k lora_B gradients
only match ours after the row permutation, which is what this fixture checks.

For every module: the Frobenius norm of grad A and grad B and four entries of each (flat
row-major indices in PEFT's layout).

With --autocast-bf16 the forward runs under torch.autocast(cpu, bfloat16) (PyTorch's usual
mixed precision) and the result goes to peft_gradients_autocast_bf16.json: how far PyTorch's
own bf16 lands from its fp32 gradients, the yardstick for droplora's --compute-type bf16.

    python3 Tests/TrainingTests/Fixtures/make_peft_gradients.py [--autocast-bf16] [models/SmolLM2-135M-Instruct.Q4_1.gguf]
(CPU; torch, transformers, peft, safetensors, gguf from PyPI)
"""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
AUTOCAST = "--autocast-bf16" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--autocast-bf16"]
MODEL = ARGS[0] if ARGS else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
ADAPTER = os.path.join(ROOT, "Tests", "AdaptersTests", "Fixtures", "peft_adapter")

# The same conversation as make_gradient_reference.py ("You are terse." / "Who built the Glass
# Tower?" / "Mira Okonkwo built it in 1907."), loss on the answer and its <|im_end|>.
TOKENS = [1, 9690, 198, 2683, 359, 1733, 313, 30, 2, 198, 1, 4093, 198, 10576, 2837, 260, 19630,
          18669, 47, 2, 198, 1, 520, 9531, 198, 61, 3792, 16765, 258, 91, 6466, 2837, 357, 281,
          216, 33, 41, 32, 39, 30, 2, 198]
MASK = [25 <= t <= 40 for t in range(len(TOKENS))]
SHORT = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o",
         "gate_proj": "gate", "up_proj": "up", "down_proj": "down"}


def main():
    torch.manual_seed(0)
    path = os.path.realpath(MODEL)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32)
    with open(os.path.join(ADAPTER, "adapter_config.json")) as f:
        saved = json.load(f)
    config = LoraConfig(
        r=saved["r"], lora_alpha=saved["lora_alpha"], use_rslora=saved["use_rslora"],
        lora_dropout=0.0, bias="none", target_modules=saved["target_modules"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    state = load_file(os.path.join(ADAPTER, "adapter_model.safetensors.bin"))
    result = set_peft_model_state_dict(peft_model, {k: v.float() for k, v in state.items()})
    assert not [k for k in result.unexpected_keys if "lora" in k], result.unexpected_keys
    peft_model.train()  # dropout is 0, so train mode only turns autograd bookkeeping on

    ids = torch.tensor([TOKENS])
    if AUTOCAST:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            logits = peft_model(ids).logits[0].float()
    else:
        logits = peft_model(ids).logits[0]
    rows = [t for t in range(len(TOKENS) - 1) if MASK[t + 1]]
    targets = torch.tensor([TOKENS[t + 1] for t in rows])
    loss = torch.nn.functional.cross_entropy(logits[rows], targets, reduction="sum")
    loss.backward()

    modules = []
    for name, param in peft_model.named_parameters():
        if "lora_A" not in name and "lora_B" not in name:
            continue
        parts = name.split(".")
        layer = int(parts[parts.index("layers") + 1])
        projection = SHORT[parts[parts.index("layers") + 3]]
        factor = "A" if "lora_A" in name else "B"
        grad = param.grad.detach().double().reshape(-1)
        n = grad.numel()
        picks = sorted({(layer * 7919 + k * 104729 + (factor == "B") * 1299709) % n for k in range(4)})
        modules.append({
            "layer": layer, "projection": projection, "factor": factor,
            "shape": list(param.shape), "norm": float(grad.norm()),
            "indices": picks, "values": [float(grad[i]) for i in picks],
        })
    out = {
        "made_by": "make_peft_gradients.py",
        "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__,
                     "transformers": __import__("transformers").__version__},
        "model": os.path.basename(MODEL), "adapter": "Tests/AdaptersTests/Fixtures/peft_adapter",
        "autocast": "bf16" if AUTOCAST else None, "tokens": TOKENS, "loss_mask": MASK, "loss": float(loss), "modules": modules,
    }
    name = "peft_gradients_autocast_bf16.json" if AUTOCAST else "peft_gradients.json"
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(out, f)
    print("loss", float(loss), "modules", len(modules))


if __name__ == "__main__":
    main()
