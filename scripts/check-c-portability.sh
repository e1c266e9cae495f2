#!/usr/bin/env bash
# The C kernels must compile without their SIMD paths: syntax-checks every file in
# Sources/CKernels for aarch64 (with Debian's libc6-dev-arm64-cross headers, installed by
# install-deps.sh) and for x86-64 with -DDQ_SCALAR_ONLY, using the Swift toolchain's clang.
# Fast (seconds); the scalar-only build and its tests are scripts/test-scalar.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG="${CLANG:-$(dirname "$(readlink -f "$(command -v swift)")")/clang}"
SYSROOT=/usr/aarch64-linux-gnu
[ -d "$SYSROOT/include" ] || { echo "missing $SYSROOT/include: apt-get install libc6-dev-arm64-cross" >&2; exit 1; }
status=0
for f in Sources/CKernels/*.c; do
  "$CLANG" --target=aarch64-linux-gnu -nostdinc -isystem "$("$CLANG" -print-resource-dir)/include" \
    -isystem "$SYSROOT/include" -ISources/CKernels/include -ISources/CKernels \
    -std=gnu11 -O3 -Werror=implicit-function-declaration -fsyntax-only "$f" || status=1
  "$CLANG" -DDQ_SCALAR_ONLY -ISources/CKernels/include -ISources/CKernels \
    -std=gnu11 -O3 -Werror=implicit-function-declaration -fsyntax-only "$f" || status=1
done
# Intrinsics outside the one switch (dq_simd.h) would break the two checks above only on the
# file's own platform; catch the pattern itself.
if grep -n 'defined(__x86_64__)' Sources/CKernels/*.c; then
  echo "guard SIMD code with '#if DQ_X86_SIMD' from dq_simd.h, not defined(__x86_64__)" >&2
  status=1
fi
[ $status -eq 0 ] && echo "C kernels: aarch64 and scalar-only syntax checks passed"
exit $status
