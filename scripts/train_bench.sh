#!/usr/bin/env bash
# Training throughput of `droplora train` on the default model (not part of CI): tokens/s and
# peak RSS at sequence length 256 and 512, micro-batch 1 and 4, 1 and 2 threads (rank 32,
# targets q,k,v,up,down, DropLoRA p=0.5 token masks, dropout 0.05), and the fraction of the
# machine's single-thread sgemm peak the step reaches, counting 4 FLOPs per frozen layer
# weight per token (forward x·Wᵀ and backward dy·W; LoRA, attention and the output
# projection are left out, so the fraction is a lower bound).
# Usage: scripts/train_bench.sh [STEPS]   (needs a release build of droplora)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=.build/release/droplora
[ -x "$bin" ] || { echo "build first: swift build -c release" >&2; exit 1; }

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
# Frozen layer weights of the model (q, k, v, o, gate, up, down of every layer).
weights=$(python3 - <<'PY'
import gguf
r = gguf.GGUFReader("models/SmolLM2-135M-Instruct.Q4_1.gguf")
n = 0
for t in r.tensors:
    if t.name.startswith("blk.") and t.name.endswith(".weight") and len(t.shape) == 2:
        n += int(t.shape[0]) * int(t.shape[1])
print(n)
PY
)
echo "frozen layer weights: $weights"
printf "%-8s %-6s %-8s %12s %10s %10s\n" seq_len micro threads tokens/s peak_MiB "%peak"
for len in 256 512; do
  for micro in 1 4; do
    for threads in 1 2; do
      line=$("$bin" train --data "$work/data.jsonl" --out "$work/out" --steps "$steps" --batch-size 4 \
        --micro-batch "$micro" --max-seq-len "$len" --threads "$threads" --rank 32 --json 2>/dev/null | tail -1)
      rm -rf "$work/out"
      python3 - "$line" "$len" "$micro" "$threads" "$gflops" "$weights" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); length, micro, threads = sys.argv[2:5]
gflops, weights = float(sys.argv[5]), float(sys.argv[6])
tps = s["tokens_per_second"]
fraction = 4 * weights * tps / 1e9 / (gflops * int(threads))
print(f"{length:<8} {micro:<6} {threads:<8} {tps:12.1f} {s['peak_rss_mib']:10.0f} {100 * fraction:9.0f}%")
PY
    done
  done
done
