#!/usr/bin/env bash
# Benchmark droplorad against llama.cpp on the same model file, prompt token ids and thread
# counts, in one run. Prints a Markdown table with the ratios (droplorad / llama.cpp).
# llama.cpp is driven through the PyPI package llama-cpp-python, built here from source for
# this CPU (AVX2/AVX-512, without AMX, which some virtual machines advertise but fault on).
#
#   scripts/bench.sh [--threads "1 2"] [--prompt-tokens 512] [--gen-tokens 128] [--repetitions 3]
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS="1 2"
PROMPT_TOKENS=512
GEN_TOKENS=128
REPETITIONS=3
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --prompt-tokens) PROMPT_TOKENS="$2"; shift 2 ;;
    --gen-tokens) GEN_TOKENS="$2"; shift 2 ;;
    --repetitions) REPETITIONS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
scripts/fetch-model.sh >/dev/null
swift build -c release --product droplora >/dev/null
python3 -c "import gguf" 2>/dev/null || python3 -m pip install --quiet gguf==0.19.0 >&2
if ! python3 -c "import llama_cpp" 2>/dev/null; then
  echo "building llama-cpp-python (takes several minutes)..." >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON \
-DGGML_AVX_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    python3 -m pip install --quiet --no-cache-dir llama-cpp-python==0.3.36 numpy >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The same prompt token ids for both engines (uniform over the vocabulary, seeded).
python3 - "$MODEL" "$PROMPT_TOKENS" > "$work/prompt_ids.txt" <<'PY'
import random, sys
from gguf import GGUFReader
vocab = len(GGUFReader(sys.argv[1]).fields["tokenizer.ggml.tokens"].data)
rng = random.Random(42)
print(" ".join(str(rng.randrange(vocab)) for _ in range(int(sys.argv[2]))))
PY

for t in $THREADS; do
  .build/release/droplora bench --model "$MODEL" --threads "$t" --prompt-ids "$work/prompt_ids.txt" \
    --gen-tokens "$GEN_TOKENS" --repetitions "$REPETITIONS" --json > "$work/ours-$t.json"
  python3 scripts/bench_llamacpp.py --model "$MODEL" --threads "$t" \
    --prompt-ids "$work/prompt_ids.txt" --gen-tokens "$GEN_TOKENS" \
    --repetitions "$REPETITIONS" > "$work/peer-$t.json"
done

python3 - "$work" $THREADS <<'PY'
import json, os, sys, platform
work, threads = sys.argv[1], sys.argv[2:]
print(f"model: {json.load(open(os.path.join(work, f'ours-{threads[0]}.json')))['model_mib']:.1f} MiB, "
      f"cpu: {platform.processor() or platform.machine()}, best of repetitions\n")
print("| threads | metric | droplorad | llama.cpp | ratio |")
print("|---|---|---|---|---|")
for t in threads:
    ours = json.load(open(os.path.join(work, f"ours-{t}.json")))
    peer = json.load(open(os.path.join(work, f"peer-{t}.json")))
    rows = [("prefill tok/s (%d-token prompt)" % ours["prompt_tokens"], "prefill_tps", True),
            ("decode tok/s (%d tokens)" % ours["gen_tokens"], "decode_tps", True),
            ("time to first token, ms", "ttft_ms", False)]
    for name, key, higher_better in rows:
        a, b = ours[key], peer[key]
        ratio = a / b if higher_better else b / a
        print(f"| {t} | {name} | {a:.1f} | {b:.1f} | {ratio:.2f}x |")
    print(f"| {t} | peak RSS, MiB | {ours['peak_rss_mib']:.1f} | {peer['peak_rss_mib']:.1f} "
          f"(of which Python {peer['baseline_rss_mib']:.1f}) | - |")
print("\nratio > 1 means droplorad is better (faster, or sooner for time to first token).")
PY
