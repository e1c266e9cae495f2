#!/usr/bin/env bash
# Decode cost in CPU time, for a machine too busy for wall-clock ratios: the task-clock
# (`perf stat -e task-clock`, CPU time of all threads) of a run decoding LONG tokens minus that of
# a run decoding SHORT tokens, over LONG - SHORT, is the CPU time of one decode step (load,
# prompt and start-up cancel out). Each droplora binary and llama.cpp's `llama-bench` run in turn,
# best of --repetitions. With more than one thread the figure includes the pools' spin-waits, so
# it is an upper bound there; the 1-thread figure is the clean one.
#   scripts/decode_cputime.sh --model FILE [--threads 1] [--short 8] [--long 40]
#       [--repetitions 2] [--droplora "BIN..."] [--llama-build DIR]
# Default binary: this checkout's release droplora (built if missing); llama.cpp from
# --llama-build (default /work/llama-build/bin, built like scripts/bench.sh if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="" THREADS=1 SHORT=8 LONG=40 REPS=2 BINS="" LLAMA_BUILD=/work/llama-build
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --short) SHORT=$2; shift 2 ;;
    --long) LONG=$2; shift 2 ;;
    --repetitions) REPS=$2; shift 2 ;;
    --droplora) BINS=$2; shift 2 ;;
    --llama-build) LLAMA_BUILD=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL" ] || { echo "--model FILE is required" >&2; exit 2; }
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
if [ -z "$BINS" ]; then
  swift build -c release --product droplora >&2
  BINS="$(swift build -c release --show-bin-path)/droplora"
fi
LB="$LLAMA_BUILD/bin/llama-bench"
[ -x "$LB" ] || scripts/build-llama.sh --llama-build "$LLAMA_BUILD" --targets llama-bench >&2

task_ms() {  # CPU milliseconds of the command
  local out; out=$(mktemp)
  perf stat -e task-clock -x, -o "$out" "$@" >/dev/null 2>&1
  grep task-clock "$out" | cut -d, -f1
  rm -f "$out"
}
droplora_ms() { task_ms "$1" bench --model "$MODEL" --threads "$THREADS" --prompt-tokens 1 --gen-tokens "$2" --repetitions 1; }
llama_ms() { LD_LIBRARY_PATH="$LLAMA_BUILD/bin" task_ms "$LB" -m "$MODEL" -p 0 -n "$1" -t "$THREADS" -r 1; }

cat "$MODEL" >/dev/null  # page cache warm: the first run must not pay the disk reads
declare -A best
names=()
for b in $BINS; do names+=("$b"); done
names+=("llama-bench")
echo "model $(basename "$MODEL"), threads $THREADS, decode $SHORT vs $LONG tokens, best of $REPS; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((rep = 0; rep < REPS; rep++)); do
  for name in "${names[@]}"; do
    if [ "$name" = llama-bench ]; then s=$(llama_ms "$SHORT"); l=$(llama_ms "$LONG")
    else s=$(droplora_ms "$name" "$SHORT"); l=$(droplora_ms "$name" "$LONG"); fi
    per=$(awk -v s="$s" -v l="$l" -v n=$((LONG - SHORT)) 'BEGIN { printf "%.2f", (l - s) / n }')
    echo "  run $((rep + 1)) $name: $per ms CPU per token"
    if [ -z "${best[$name]:-}" ] || awk -v a="$per" -v b="${best[$name]}" 'BEGIN { exit !(a < b) }'; then best[$name]=$per; fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
ref=${best[llama-bench]}
for name in "${names[@]}"; do
  awk -v n="$name" -v ms="${best[$name]}" -v r="$ref" \
    'BEGIN { printf "%-60s %8.2f ms/token  %7.2f tok/s (CPU time)  %5.2fx llama.cpp\n", n, ms, 1000 / ms, r / ms }'
done
