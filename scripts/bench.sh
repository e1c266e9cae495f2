#!/usr/bin/env bash
# Benchmark droplorad (`droplora bench`) against llama.cpp (`llama-bench`) on the same files and
# thread counts in one run, interleaved, best of N: prefill (pp), decode (tg), peak RSS of both,
# decode as a fraction of the bandwidth-bound rate (read bandwidth measured here by
# scripts/membw.c), the command, the load and the CPU flags. Prints one Markdown table. Both
# engines keep the KV cache in f16 (llama-bench's default; `droplora bench --kv-cache-type f16`).
# The benchmark files are made by scripts/make-bench-models.sh (run it first; files missing
# from --models-dir are skipped with a warning). llama.cpp is built, if missing, from the
# llama.cpp that the PyPI sdist llama-cpp-python==0.3.36 vendors (scripts/make-bench-models.sh).
#
#   scripts/bench.sh [--threads "1 2"] [--prompt-tokens 512] [--gen-tokens 128] [--repetitions 2]
#       [--model FILE | --files "FILE..."] [--models-dir models/bench]
#       [--llama-build /work/llama-build] [--json-out FILE] [--quick]
# --quick: the default model and the 1.7B Q4_1 and Q4_K_M files, 64 decode tokens, 1 repetition.
set -euo pipefail
cd "$(dirname "$0")/.."
COMMAND="scripts/bench.sh $*"

THREADS="1 2"
PROMPT_TOKENS=512
GEN_TOKENS=128
REPETITIONS=2
FILES=""
MODELS_DIR=models/bench
LLAMA_BUILD=/work/llama-build
JSON_OUT=""
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --prompt-tokens) PROMPT_TOKENS="$2"; shift 2 ;;
    --gen-tokens) GEN_TOKENS="$2"; shift 2 ;;
    --repetitions) REPETITIONS="$2"; shift 2 ;;
    --model) FILES="$2"; shift 2 ;;
    --files) FILES="$2"; shift 2 ;;
    --models-dir) MODELS_DIR="$2"; shift 2 ;;
    --llama-build) LLAMA_BUILD="$2"; shift 2 ;;
    --json-out) JSON_OUT="$2"; shift 2 ;;
    --quick) QUICK=1; GEN_TOKENS=64; REPETITIONS=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
# /usr/bin/time -v gives both engines' peak RSS; a C compiler builds the bandwidth probe.
if [ ! -x /usr/bin/time ] || ! command -v cc >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq time gcc >&2
fi
scripts/fetch-model.sh >/dev/null
DEFAULT=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -z "$FILES" ]; then
  if [ "$QUICK" = 1 ]; then
    names="llama-1.7b-random-Q4_1 llama-1.7b-random-Q4_K_M"
  else
    names=""
    for t in Q4_K_M Q4_0 Q5_K_M Q8_0; do names+=" smollm2-135m-$t"; done
    for s in 360m 1.7b; do for t in Q4_0 Q4_1 Q5_K_M Q4_K_M Q8_0; do names+=" llama-$s-random-$t"; done; done
  fi
  FILES="$DEFAULT"
  for n in $names; do
    if [ -s "$MODELS_DIR/$n.gguf" ]; then FILES+=" $MODELS_DIR/$n.gguf"
    else echo "missing $MODELS_DIR/$n.gguf (scripts/make-bench-models.sh --out $MODELS_DIR), skipped" >&2; fi
  done
fi
# llama-bench (and llama-quantize) from the pinned llama.cpp source, built if missing.
[ -x "$LLAMA_BUILD/bin/llama-bench" ] || scripts/make-bench-models.sh --llama-build "$LLAMA_BUILD" --shapes "" >&2
swift build -c release --product droplora >&2
BIN=$(swift build -c release --show-bin-path)
python3 -c "import gguf" 2>/dev/null || python3 -m pip install --quiet gguf==0.19.0 >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -march=native -pthread scripts/membw.c -o "$work/membw"
# The prompt token ids for droplora bench (uniform over the vocabulary, seeded; llama-bench
# draws its own random ids: the speed does not depend on which).
python3 - "$DEFAULT" "$PROMPT_TOKENS" > "$work/prompt_ids.txt" <<'PY'
import random, sys
from gguf import GGUFReader
vocab = len(GGUFReader(sys.argv[1]).fields["tokenizer.ggml.tokens"].data)
rng = random.Random(42)
print(" ".join(str(rng.randrange(vocab)) for _ in range(int(sys.argv[2]))))
PY

# shellcheck disable=SC2086
python3 scripts/bench_table.py --droplora "$BIN/droplora" --llama-bench "$LLAMA_BUILD/bin/llama-bench" \
  --membw "$work/membw" --files $FILES --threads $THREADS --prompt-ids "$work/prompt_ids.txt" \
  --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --repetitions "$REPETITIONS" \
  --command "$COMMAND" ${JSON_OUT:+--json-out "$JSON_OUT"}
