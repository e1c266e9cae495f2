#!/usr/bin/env bash
# Build llama.cpp tools (the peer and reference of the benchmarks) from the llama.cpp source
# that the PyPI sdist llama-cpp-python vendors (never committed), for this CPU kind: AVX2/AVX-512/
# VNNI as the CPU reports them, no AMX. Targets already
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

# The SIMD extensions to build for: those this CPU reports, each on or off (a fixed list faults:
# AVX-VNNI is on Intel's cores and absent from AMD's Zen 4, which has AVX-512 VNNI). AMX stays
# off (GGML_NATIVE faults on the AMX some virtual machines advertise). A build for other flags
# (the stamp file) is rebuilt.
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
ggml_flag() { case "$cpu_flags" in *" $2 "*) echo "-D$1=ON" ;; *) echo "-D$1=OFF" ;; esac; }
simd_options="$(ggml_flag GGML_AVX avx) $(ggml_flag GGML_AVX2 avx2) $(ggml_flag GGML_FMA fma) \
$(ggml_flag GGML_F16C f16c) $(ggml_flag GGML_AVX512 avx512f) $(ggml_flag GGML_AVX512_VNNI avx512_vnni) \
$(ggml_flag GGML_AVX512_VBMI avx512vbmi) $(ggml_flag GGML_AVX512_BF16 avx512_bf16) \
$(ggml_flag GGML_AVX_VNNI avx_vnni)"
stamp="$LLAMA_BUILD/droplora-simd-options"

missing=""
if [ "$(cat "$stamp" 2>/dev/null)" != "$simd_options" ]; then
  missing=" $TARGETS"
  rm -rf "$LLAMA_BUILD/bin"  # every tool there was built for other flags
else
  for t in $TARGETS; do [ -x "$LLAMA_BUILD/bin/$t" ] || missing+=" $t"; done
fi
[ -n "$missing" ] || exit 0

need=()
for p in cmake g++ make; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake g++ make >&2
fi
echo "building$missing from llama-cpp-python==$LLAMA_VERSION's vendored llama.cpp (takes a while)..." >&2
# The source stays beside the build: CMake's cache names its source directory, so a later
# build of another target (or for other flags) must find it at the same path.
src="$LLAMA_BUILD/source"
if [ ! -f "$src/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp/CMakeLists.txt" ]; then
  rm -rf "$src" "$LLAMA_BUILD/CMakeCache.txt" "$LLAMA_BUILD/CMakeFiles"
  mkdir -p "$src"
  (cd "$src" && python3 -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$LLAMA_VERSION" >&2)
  tar -xzf "$src"/llama_cpp_python-"$LLAMA_VERSION".tar.gz -C "$src"
fi
cmake -S "$src/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp" -B "$LLAMA_BUILD" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF $simd_options -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
  -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF >&2
# shellcheck disable=SC2086
cmake --build "$LLAMA_BUILD" --target $missing -j2 >&2
echo "$simd_options" > "$stamp"
