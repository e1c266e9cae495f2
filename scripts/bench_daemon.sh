#!/usr/bin/env bash
# Benchmark the droplorad daemon against llama.cpp's own server (llama-server) on the same GGUF
# and thread count, in one run: start-up time (exec -> READY=1 and first /health), single-stream
# decode tokens/s through the socket against the offline `droplora bench`, and aggregate tokens/s
# and time to first token with 1, 4 and 8 concurrent streaming clients, droplorad at
# max_concurrent_generations = 1, 2, 4 beside llama-server -np 1, 2, 4. Prints Markdown tables.
#
# llama-server is built here from the llama.cpp source that the PyPI sdist llama-cpp-python
# vendors (never committed), with the CPU flags scripts/bench.sh uses (AVX2/AVX-512, no AMX:
# GGML_NATIVE faults on the AMX some virtual machines advertise).
#
#   scripts/bench_daemon.sh [--threads "2"] [--slots "1 2 4"] [--clients "1 4 8"]
#       [--max-tokens 128] [--single-tokens 128] [--prompts-per-client 3] [--repetitions 3]
#       [--single-repetitions 3] [--model PATH]
#       [--llama-build DIR] [--json-out FILE] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
COMMAND="scripts/bench_daemon.sh $*"

THREADS="2"
SLOTS="1 2 4"
CLIENTS="1 4 8"
MAX_TOKENS=128
SINGLE_TOKENS=128
PROMPTS_PER_CLIENT=3
REPETITIONS=3
SINGLE_REPETITIONS=3
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
LLAMA_BUILD=/work/llama-build
LLAMA_VERSION=0.3.36
JSON_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --slots) SLOTS="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --single-tokens) SINGLE_TOKENS="$2"; shift 2 ;;
    --prompts-per-client) PROMPTS_PER_CLIENT="$2"; shift 2 ;;
    --repetitions) REPETITIONS="$2"; shift 2 ;;
    --single-repetitions) SINGLE_REPETITIONS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --llama-build) LLAMA_BUILD="$2"; shift 2 ;;
    --json-out) JSON_OUT="$2"; shift 2 ;;
    --quick) SLOTS="1 2"; CLIENTS="1 4"; MAX_TOKENS=64; SINGLE_TOKENS=64; PROMPTS_PER_CLIENT=2; REPETITIONS=1; SINGLE_REPETITIONS=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
need=()
for p in cmake g++ make; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake g++ make >&2
fi
scripts/fetch-model.sh >/dev/null
swift build -c release --product droplorad >&2
swift build -c release --product droplora >&2
BIN=$(swift build -c release --show-bin-path)

SERVER="$LLAMA_BUILD/bin/llama-server"
if [ ! -x "$SERVER" ]; then
  echo "building llama-server from llama-cpp-python==$LLAMA_VERSION's vendored llama.cpp (takes a while)..." >&2
  src=$(mktemp -d)
  (cd "$src" && python3 -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$LLAMA_VERSION" >&2)
  tar -xzf "$src"/llama_cpp_python-"$LLAMA_VERSION".tar.gz -C "$src"
  cmake -S "$src/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp" -B "$LLAMA_BUILD" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
    -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON \
    -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
    -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$LLAMA_BUILD" --target llama-server -j2 >&2
  rm -rf "$src"
fi

for t in $THREADS; do
  python3 scripts/bench_daemon.py --droplorad "$BIN/droplorad" --droplora "$BIN/droplora" \
    --llama-server "$SERVER" --model "$MODEL" --threads "$t" --slots "$SLOTS" --clients "$CLIENTS" \
    --max-tokens "$MAX_TOKENS" --single-tokens "$SINGLE_TOKENS" --prompts-per-client "$PROMPTS_PER_CLIENT" \
    --repetitions "$REPETITIONS" --single-repetitions "$SINGLE_REPETITIONS" --command "$COMMAND" ${JSON_OUT:+--json-out "$JSON_OUT.t$t"}
  echo
done
