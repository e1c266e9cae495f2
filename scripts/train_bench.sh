#!/usr/bin/env bash
# Training throughput of `droplora train` on the default model (not part of CI), side by side
# in the same run with PyTorch + PEFT (scripts/train_bench_peft.py: float32 on the CPU, the GGUF
# loaded dequantized by transformers, same rank, targets, dropout, batch and sequence length):
# tokens/s and peak RSS at sequence length 256 and 512, micro-batch 1 and 4, 1 and 2 threads
# (rank 32, targets q,k,v,up,down, droplora with DropLoRA p=0.5 token masks, dropout 0.05),
# and the fraction of the machine's single-thread sgemm peak (times the threads) each reaches,
# counting 4 FLOPs per weight multiplied per token (every layer matrix and the output
# projection; forward x·Wᵀ and backward dy·W — the base is frozen, so no weight-gradient
# product). LoRA's and attention's FLOPs are left out, so the fraction is a lower bound.
# Usage: scripts/train_bench.sh [STEPS]
# PyTorch comes from a venv under .build (torch, transformers, peft, gguf from PyPI; a few GB);
# set PEFT_PYTHON to use another interpreter that has them.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=.build/release/droplora
scripts/fetch-model.sh >/dev/null
swift build -c release --product droplora >/dev/null
python=${PEFT_PYTHON:-.build/peft-venv/bin/python}
if ! "$python" -c 'import torch, transformers, peft, gguf' 2>/dev/null; then
  python3 -m venv .build/peft-venv
  .build/peft-venv/bin/pip install --quiet torch transformers peft gguf
  python=.build/peft-venv/bin/python
fi

# Long answers, truncated to --max-seq-len, so nearly every position carries loss.
python3 - "$work/data.jsonl" <<'PY'
import json, random, sys
random.seed(0)
words = "the river runs past seven bright windows while a quiet number of silver clouds drift over the table".split()
with open(sys.argv[1], "w") as f:
    for _ in range(16):
        f.write(json.dumps({"prompt": " ".join(random.choice(words) for _ in range(12)),
                            "completion": " ".join(random.choice(words) for _ in range(900))}) + "\n")
PY

cc -O2 scripts/sgemm_peak.c $(pkg-config --cflags --libs openblas) -o "$work/sgemm_peak"
# The core type droplora picks for itself (see Sources/droplora/OpenBLASCoreType.swift).
flags=$(grep -m1 '^flags' /proc/cpuinfo)
if [[ $flags == *avx512_bf16* && $flags == *avx512f* ]]; then core=Cooperlake
elif [[ $flags == *avx512f* ]]; then core=SkylakeX
elif [[ $flags == *avx2* ]]; then core=Haswell
else core=""; fi
peak=$(OPENBLAS_CORETYPE=$core "$work/sgemm_peak")
echo "sgemm peak: $peak"
gflops=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['sgemm_gflops_per_thread'])" "$peak")
# Weights a token's forward multiplies by: every layer matrix and the output projection.
weights=$("$python" - <<'PY'
import gguf
r = gguf.GGUFReader("models/SmolLM2-135M-Instruct.Q4_1.gguf")
n = 0
names = {t.name for t in r.tensors}
for t in r.tensors:
    if len(t.shape) == 2 and (t.name.startswith("blk.") or t.name == "output.weight"
                              or (t.name == "token_embd.weight" and "output.weight" not in names)):
        n += int(t.shape[0]) * int(t.shape[1])
print(n)
PY
)
echo "weights multiplied per token: $weights"
row() {  # implementation seq micro threads json
  python3 - "$@" "$gflops" "$weights" <<'PY'
import json, sys
name, length, micro, threads, line, gflops, weights = sys.argv[1:8]
s = json.loads(line)
tps = s["tokens_per_second"]
fraction = 4 * float(weights) * tps / 1e9 / (float(gflops) * int(threads))
print(f"{name:<10} {length:<8} {micro:<6} {threads:<8} {tps:12.1f} {s['peak_rss_mib']:10.0f} {100 * fraction:9.0f}%", flush=True)
PY
}
printf "%-10s %-8s %-6s %-8s %12s %10s %10s\n" impl seq_len micro threads tokens/s peak_MiB "%peak"
for len in 256 512; do
  for micro in 1 4; do
    for threads in 1 2; do
      line=$("$bin" train --data "$work/data.jsonl" --out "$work/out" --steps "$steps" --batch-size 4 \
        --micro-batch "$micro" --max-seq-len "$len" --threads "$threads" --rank 32 --json 2>/dev/null | tail -1)
      rm -rf "$work/out"
      row droplora "$len" "$micro" "$threads" "$line"
      line=$("$python" scripts/train_bench_peft.py --seq-len "$len" --micro-batch "$micro" \
        --threads "$threads" --steps "$steps" --rank 32 2>/dev/null | tail -1)
      row pytorch "$len" "$micro" "$threads" "$line"
    done
  done
done
