#!/usr/bin/env bash
# The kernels with their SIMD paths compiled out (DQ_SCALAR_ONLY, see Sources/CKernels/dq_simd.h):
# what a machine without AVX2 (aarch64) runs. A separate scratch path so the main build stays
# intact; only the kernel, kernel-wrapper and model tests run (the rest does not touch SIMD).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check-c-portability.sh
SCRATCH="${SCALAR_SCRATCH:-.build-scalar}"
swift build -c release --scratch-path "$SCRATCH" --build-tests -Xcc -DDQ_SCALAR_ONLY
swift test -c release --scratch-path "$SCRATCH" --skip-build --no-parallel \
  --filter 'CKernelsTests|KernelsTests|LlamaTests' "$@"
