#!/usr/bin/env bash
# Make the benchmark files of issue 14 (never committed):
#   smollm2-135m-{Q4_K_M,Q4_0,Q5_K_M,Q8_0}.gguf  the default model re-quantized
#                                                (llama-quantize --allow-requantize)
#   llama-360m-random-{Q4_0,Q4_1,Q5_K_M,Q4_K_M,Q8_0}.gguf  random weights at SmolLM2-360M's shape
#   llama-1.7b-random-{Q4_0,Q4_1,Q5_K_M,Q4_K_M,Q8_0}.gguf  random weights at SmolLM2-1.7B's shape
# The random files are written as F16 with the default model's tokenizer by
# scripts/make_random_llama.py (gguf package), then quantized with llama.cpp's llama-quantize.
# Widths that are not a multiple of 256 (576, 960) make llama-quantize fall back from K-quants
# to Q5_0/Q5_1/Q8_0/Q6_K for those tensors, as it does for the real models.
# llama-quantize and llama-bench are built, if missing, by scripts/build-llama.sh (llama.cpp as
# the PyPI sdist llama-cpp-python==0.3.36 vendors).
#
#   scripts/make-bench-models.sh [--out DIR (models/bench)] [--llama-build DIR (/work/llama-build)]
#       [--shapes "135m 360m 1.7b"] [--types "Q4_0 Q4_1 Q5_K_M Q4_K_M Q8_0"] [--force]
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=models/bench
LLAMA_BUILD=/work/llama-build
SHAPES="135m 360m 1.7b"
TYPES="Q4_0 Q4_1 Q5_K_M Q4_K_M Q8_0"
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --llama-build) LLAMA_BUILD="$2"; shift 2 ;;
    --shapes) SHAPES="$2"; shift 2 ;;
    --types) TYPES="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/fetch-model.sh >/dev/null
DEFAULT=models/SmolLM2-135M-Instruct.Q4_1.gguf
python3 -c "import gguf" 2>/dev/null || python3 -m pip install --quiet gguf==0.19.0 numpy >&2
mkdir -p "$OUT"

QUANTIZE="$LLAMA_BUILD/bin/llama-quantize"
scripts/build-llama.sh --llama-build "$LLAMA_BUILD" --targets "llama-quantize llama-bench"

quantize() {  # quantize SRC DST TYPE [extra flags]
  local src=$1 dst=$2 type=$3; shift 3
  if [ -s "$dst" ] && [ "$FORCE" = 0 ]; then echo "exists: $dst" >&2; return; fi
  "$QUANTIZE" "$@" "$src" "$dst.tmp" "$type" 2 > "$dst.log" 2>&1 || { cat "$dst.log" >&2; exit 1; }
  mv "$dst.tmp" "$dst"; rm -f "$dst.log"
  echo "made $dst" >&2
}

for shape in $SHAPES; do
  case "$shape" in
    135m)
      for t in Q4_K_M Q4_0 Q5_K_M Q8_0; do
        quantize "$DEFAULT" "$OUT/smollm2-135m-$t.gguf" "$t" --allow-requantize
      done
      continue ;;
    360m) dims="--hidden 960 --layers 32 --heads 15 --kv-heads 5 --ffn 2560" ;;
    1.7b) dims="--hidden 2048 --layers 24 --heads 32 --kv-heads 32 --ffn 8192" ;;
    *) echo "unknown shape $shape (135m, 360m, 1.7b)" >&2; exit 2 ;;
  esac
  f16="$OUT/llama-$shape-random-F16.gguf"
  todo=0
  for t in $TYPES; do [ -s "$OUT/llama-$shape-random-$t.gguf" ] && [ "$FORCE" = 0 ] || todo=1; done
  [ "$todo" = 1 ] || { echo "exists: $OUT/llama-$shape-random-*.gguf" >&2; continue; }
  if [ ! -s "$f16" ]; then
    # shellcheck disable=SC2086
    python3 scripts/make_random_llama.py --tokenizer-from "$DEFAULT" --out "$f16.tmp" \
      --name "random-llama-$shape" $dims
    mv "$f16.tmp" "$f16"
  fi
  for t in $TYPES; do quantize "$f16" "$OUT/llama-$shape-random-$t.gguf" "$t"; done
  rm -f "$f16"
done
ls -la "$OUT"
