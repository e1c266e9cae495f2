#!/usr/bin/env bash
# Training throughput of `droplora train` on the default model or another (--model; not part of CI), side by side
# in the same run with PyTorch + PEFT (scripts/train_bench_peft.py: float32 on the CPU, the GGUF
# loaded dequantized by transformers, same rank, targets, dropout, batch and sequence length):
# tokens/s and peak RSS at sequence length 256 and 512, micro-batch 1 and 4, 1 and 2 threads
# (rank 32, targets q,k,v,up,down, droplora with DropLoRA p=0.5 token masks, dropout 0.05),
# and the fraction of the machine's single-thread sgemm peak (times the threads) each reaches,
# counting 4 FLOPs per weight multiplied per token (every layer matrix and the output
# projection; forward x·Wᵀ and backward dy·W — the base is frozen, so no weight-gradient
# product). LoRA's and attention's FLOPs are left out, so the fraction is a lower bound.
# Both sides time the training steps only (first step included, model loading and droplora's
# final checkpoint write excluded).
# Each setting also runs droplora with --compute-type int8 (inference's 8-bit forward products,
# fp32 backward), compared with PyTorch float32.
# On CPUs with AVX512-BF16 each setting also runs droplora with --compute-type bf16 and PyTorch
# under torch.autocast(cpu, bfloat16) (its usual mixed precision), and the summary gives the
# ratios of each pair; "%peak" stays relative to the fp32 sgemm peak, so bf16 may pass 100 %.
# Usage: scripts/train_bench.sh [STEPS] [--model FILE] [--lengths "256 512"] [--micro "1 4"]
#          [--threads "1 2"]
# --model takes any GGUF transformers can load (e.g. models/gemma-3-270m-q4_k_m.gguf, fetched
# by scripts/fetch-gemma3.sh); the default model is fetched when it is the one used.
# PyTorch comes from a venv under .build (torch, transformers, peft, gguf from PyPI; a few GB);
# set PEFT_PYTHON to use another interpreter that has them.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=3
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
lengths="256 512"; micros="1 4"; thread_counts="1 2"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --lengths) lengths="$2"; shift 2 ;;
    --micro) micros="$2"; shift 2 ;;
    --threads) thread_counts="$2"; shift 2 ;;
    [0-9]*) steps="$1"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=.build/release/droplora
if [ "$model" = models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then scripts/fetch-model.sh >/dev/null; fi
[ -f "$model" ] || { echo "no model file $model" >&2; exit 1; }
echo "model: $model"
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
weights=$("$python" - "$model" <<'PY'
import gguf, sys
r = gguf.GGUFReader(sys.argv[1])
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
results="$work/results.jsonl"
run() {  # implementation seq micro threads json-line: prints the row and keeps it for the summary
  python3 - "$@" "$gflops" "$weights" "$results" <<'PY'
import json, sys
name, length, micro, threads, line, gflops, weights, results = sys.argv[1:9]
s = json.loads(line)
tps = s["tokens_per_second"]
fraction = 4 * float(weights) * tps / 1e9 / (float(gflops) * int(threads))
print(f"{name:<14} {length:<8} {micro:<6} {threads:<8} {tps:12.1f} {s['peak_rss_mib']:10.0f} {100 * fraction:9.0f}%", flush=True)
with open(results, "a") as f:
    f.write(json.dumps({"impl": name, "setting": f"{length}/{micro}/{threads}", "tps": tps,
                        "rss": s["peak_rss_mib"]}) + "\n")
PY
}
printf "%-14s %-8s %-6s %-8s %12s %10s %10s\n" impl seq_len micro threads tokens/s peak_MiB "%peak"
# droplora's compute types and PyTorch's autocast flag: bf16 only where the CPU has it.
types=(f32 int8); autocasts=("")
if grep -q avx512_bf16 /proc/cpuinfo; then types+=(bf16); autocasts+=(--autocast-bf16); fi
for len in $lengths; do
  for micro in $micros; do
    for threads in $thread_counts; do
      for type in "${types[@]}"; do
        # tokens/s from the last step's line (the steps alone, as PyTorch's script times them:
        # the final checkpoint and adapter writes come after it), peak RSS from the summary.
        line=$("$bin" train --model "$model" --data "$work/data.jsonl" --out "$work/out" --steps "$steps" --batch-size 4 \
          --micro-batch "$micro" --max-seq-len "$len" --threads "$threads" --rank 32 \
          --compute-type "$type" --json 2>/dev/null | python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin if l.startswith("{")]
last_step = [l for l in lines if "step" in l][-1]
print(json.dumps({"tokens_per_second": last_step["tokens_per_second"], "peak_rss_mib": lines[-1]["peak_rss_mib"]}))')
        rm -rf "$work/out"
        run "droplora-$type" "$len" "$micro" "$threads" "$line"
      done
      for autocast in "${autocasts[@]}"; do
        line=$("$python" scripts/train_bench_peft.py --model "$model" --seq-len "$len" --micro-batch "$micro" \
          --threads "$threads" --steps "$steps" --rank 32 $autocast 2>/dev/null | tail -1)
        name=pytorch-f32; [[ -n $autocast ]] && name=pytorch-bf16
        run "$name" "$len" "$micro" "$threads" "$line"
      done
    done
  done
done
# Ratios within each setting (seq/micro/threads), from the runs above.
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["setting"], {})[r["impl"]] = r
print()
print(f"{'setting':<12} {'f32/pt-f32':>11} {'int8/pt-f32':>12} {'bf16/pt-f32':>12} {'bf16/pt-bf16':>13} {'mem f32/pt-f32':>15} {'mem int8/pt-f32':>16}")
for setting, r in by.items():
    def ratio(a, b, key="tps"):
        return f"{r[a][key] / r[b][key]:.2f}x" if a in r and b in r else "-"
    print(f"{setting:<12} {ratio('droplora-f32', 'pytorch-f32'):>11} {ratio('droplora-int8', 'pytorch-f32'):>12} "
          f"{ratio('droplora-bf16', 'pytorch-f32'):>12} {ratio('droplora-bf16', 'pytorch-bf16'):>13} "
          f"{ratio('droplora-f32', 'pytorch-f32', 'rss'):>15} {ratio('droplora-int8', 'pytorch-f32', 'rss'):>16}")
PY
