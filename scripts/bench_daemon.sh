#!/usr/bin/env bash
# Benchmark the droplorad daemon against llama.cpp's own server (llama-server) on the same GGUFs
# and thread count, in one run (issue 16's benchmark): start-up time (exec -> READY=1 and first
# /health), single-stream decode tokens/s through the socket against the offline
# `droplora bench`; aggregate tokens/s (best of N), time to first token p50/p95 and the ratio
# droplorad/llama-server with 1, 4 and 8 concurrent streaming clients, droplorad at
# max_concurrent_generations = 8 beside llama-server -np 8 -c 16384 (continuous batching), on the
# default model (128 tokens a request) and on the ~1.7B-parameter Q4_K_M random-weight file
# (64 tokens); and, droplorad alone, 8 clients on 8 different random adapters (rank 16, rank 64)
# against 8 clients on one adapter, per adapters.merge_type (none, q8_0). Every request sends
# `ignore_eos` so both servers generate the requested length on random weights.
# Prints Markdown tables with the command, the CPU flags and the load average.
#
# Made here if missing (never committed): llama-server (scripts/build-llama.sh), the 1.7B file
# (scripts/make-bench-models.sh --shapes 1.7b --types Q4_K_M into --models-dir), the random
# adapters (`droplora adapter random`, into --adapter-dir).
#
#   scripts/bench_daemon.sh [--threads "2"] [--slots "8"] [--clients "1 4 8"]
#       [--max-tokens 128] [--large-max-tokens 64] [--single-tokens 128]
#       [--prompts-per-client 3] [--repetitions 3] [--single-repetitions 3]
#       [--model PATH] [--models-dir DIR (models/bench)] [--large-model PATH | --no-large-model]
#       [--adapter-dir DIR (models/bench/adapters)] [--adapter-ranks "16 64"]
#       [--adapter-merge-types "none q8_0"] [--no-adapters]
#       [--llama-build DIR] [--bin-dir DIR] [--json-out FILE] [--quick]
# --bin-dir: take droplorad and droplora from DIR (e.g. another branch's release build) instead
# of building this checkout's.
# --quick: 1 and 4 clients, 64 tokens (32 on the large model), 2 prompts a client, once; rank 16,
# merge type none.
set -euo pipefail
cd "$(dirname "$0")/.."
COMMAND="scripts/bench_daemon.sh $*"

THREADS="2"
SLOTS="8"
CLIENTS="1 4 8"
MAX_TOKENS=128
LARGE_MAX_TOKENS=64
SINGLE_TOKENS=128
PROMPTS_PER_CLIENT=3
REPETITIONS=3
SINGLE_REPETITIONS=3
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
MODELS_DIR=models/bench
LARGE_MODEL=""
LARGE=1
ADAPTER_DIR=""
ADAPTER_RANKS="16 64"
ADAPTER_CLIENTS=8
ADAPTER_MERGE_TYPES="none q8_0"
ADAPTERS=1
LLAMA_BUILD=/work/llama-build
JSON_OUT=""
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --slots) SLOTS="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --large-max-tokens) LARGE_MAX_TOKENS="$2"; shift 2 ;;
    --single-tokens) SINGLE_TOKENS="$2"; shift 2 ;;
    --prompts-per-client) PROMPTS_PER_CLIENT="$2"; shift 2 ;;
    --repetitions) REPETITIONS="$2"; shift 2 ;;
    --single-repetitions) SINGLE_REPETITIONS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --models-dir) MODELS_DIR="$2"; shift 2 ;;
    --large-model) LARGE_MODEL="$2"; shift 2 ;;
    --no-large-model) LARGE=0; shift ;;
    --adapter-dir) ADAPTER_DIR="$2"; shift 2 ;;
    --adapter-ranks) ADAPTER_RANKS="$2"; shift 2 ;;
    --adapter-clients) ADAPTER_CLIENTS="$2"; shift 2 ;;
    --adapter-merge-types) ADAPTER_MERGE_TYPES="$2"; shift 2 ;;
    --no-adapters) ADAPTERS=0; shift ;;
    --llama-build) LLAMA_BUILD="$2"; shift 2 ;;
    --json-out) JSON_OUT="$2"; shift 2 ;;
    --bin-dir) BIN="$2"; shift 2 ;;
    --quick) CLIENTS="1 4"; MAX_TOKENS=64; LARGE_MAX_TOKENS=32; SINGLE_TOKENS=64; PROMPTS_PER_CLIENT=2
             REPETITIONS=1; SINGLE_REPETITIONS=1; ADAPTER_RANKS=16; ADAPTER_MERGE_TYPES=none; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
LARGE_MODEL=${LARGE_MODEL:-$MODELS_DIR/llama-1.7b-random-Q4_K_M.gguf}
ADAPTER_DIR=${ADAPTER_DIR:-$MODELS_DIR/adapters}

scripts/install-deps.sh
scripts/fetch-model.sh >/dev/null
if [ -z "$BIN" ]; then
  swift build -c release --product droplorad >&2
  swift build -c release --product droplora >&2
  BIN=$(swift build -c release --show-bin-path)
fi
scripts/build-llama.sh --llama-build "$LLAMA_BUILD" --targets llama-server

if [ "$LARGE" = 1 ] && [ ! -s "$LARGE_MODEL" ]; then
  if [ "$LARGE_MODEL" = "$MODELS_DIR/llama-1.7b-random-Q4_K_M.gguf" ]; then
    scripts/make-bench-models.sh --out "$MODELS_DIR" --llama-build "$LLAMA_BUILD" --shapes 1.7b --types Q4_K_M >&2
  else
    echo "missing $LARGE_MODEL" >&2; exit 1
  fi
fi
if [ "$ADAPTERS" = 1 ]; then
  # Seeded, so a second run (or another branch's binary) serves the same adapters.
  mkdir -p "$ADAPTER_DIR"
  for r in $ADAPTER_RANKS; do
    for i in $(seq 0 $((ADAPTER_CLIENTS - 1))); do
      f="$ADAPTER_DIR/r$r-$i.gguf"
      [ -s "$f" ] || "$BIN/droplora" adapter random --model "$MODEL" --rank "$r" --seed $((1000 * r + i)) "$f" >&2
    done
  done
fi

for t in $THREADS; do
  # shellcheck disable=SC2046
  python3 scripts/bench_daemon.py --droplorad "$BIN/droplorad" --droplora "$BIN/droplora" \
    --llama-server "$LLAMA_BUILD/bin/llama-server" --model "$MODEL" \
    $([ "$LARGE" = 1 ] && echo --large-model "$LARGE_MODEL") \
    --threads "$t" --slots "$SLOTS" --clients "$CLIENTS" \
    --max-tokens "$MAX_TOKENS" --large-max-tokens "$LARGE_MAX_TOKENS" --single-tokens "$SINGLE_TOKENS" \
    --prompts-per-client "$PROMPTS_PER_CLIENT" --repetitions "$REPETITIONS" \
    --single-repetitions "$SINGLE_REPETITIONS" \
    $([ "$ADAPTERS" = 1 ] && echo --adapter-dir "$ADAPTER_DIR") \
    --adapter-ranks "$ADAPTER_RANKS" --adapter-clients "$ADAPTER_CLIENTS" \
    --adapter-merge-types "$ADAPTER_MERGE_TYPES" \
    --command "$COMMAND" ${JSON_OUT:+--json-out "$JSON_OUT.t$t"}
  echo
done
