#!/usr/bin/env bash
# Build llama.cpp tools (the peer and reference of the benchmarks) from the llama.cpp source
# that the PyPI sdist llama-cpp-python vendors (never committed), for this CPU kind: AVX2/AVX-512/
# VNNI, no AMX (GGML_NATIVE faults on the AMX some virtual machines advertise). Targets already
# built in DIR are left alone. Used by scripts/make-bench-models.sh and scripts/bench_daemon.sh.
#
#   scripts/build-llama.sh [--llama-build DIR (/work/llama-build)]
#       [--targets "llama-server llama-bench llama-quantize"] [--version 0.3.36]
set -euo pipefail
LLAMA_BUILD=/work/llama-build
TARGETS="llama-server llama-bench llama-quantize"
LLAMA_VERSION=0.3.36
while [ $# -gt 0 ]; do
  case "$1" in
    --llama-build) LLAMA_BUILD="$2"; shift 2 ;;
    --targets) TARGETS="$2"; shift 2 ;;
    --version) LLAMA_VERSION="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

missing=""
for t in $TARGETS; do [ -x "$LLAMA_BUILD/bin/$t" ] || missing+=" $t"; done
[ -n "$missing" ] || exit 0

need=()
for p in cmake g++ make; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake g++ make >&2
fi
echo "building$missing from llama-cpp-python==$LLAMA_VERSION's vendored llama.cpp (takes a while)..." >&2
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
(cd "$src" && python3 -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$LLAMA_VERSION" >&2)
tar -xzf "$src"/llama_cpp_python-"$LLAMA_VERSION".tar.gz -C "$src"
cmake -S "$src/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp" -B "$LLAMA_BUILD" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
  -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON \
  -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
  -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF >&2
# shellcheck disable=SC2086
cmake --build "$LLAMA_BUILD" --target $missing -j2 >&2
