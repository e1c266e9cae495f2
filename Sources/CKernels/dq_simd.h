// The one switch for every SIMD path in CKernels. Rules for every file here, new ones included:
//  - a file with intrinsics includes "dq_simd.h" and guards them (the <immintrin.h> include,
//    the target-attributed kernels, the dispatch to them) with `#if DQ_X86_SIMD`, never with
//    `defined(__x86_64__)` directly;
//  - its `#else` branch is plain C: it calls or returns the scalar twin, which lives in the same
//    target and is always compiled;
//  - defining DQ_SCALAR_ONLY builds the scalar twins alone, exactly what a non-x86 machine
//    (aarch64) compiles: `swift build -Xcc -DDQ_SCALAR_ONLY` (scripts/test-scalar.sh runs the
//    kernel tests that way) and scripts/check-c-portability.sh syntax-checks every .c file here
//    for aarch64 and scalar-only; both run in CI.
#ifndef DQ_SIMD_H
#define DQ_SIMD_H

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(DQ_SCALAR_ONLY)
#define DQ_X86_SIMD 1
#else
#define DQ_X86_SIMD 0
#endif

#endif
