// AVX-512 VNNI helpers shared by the decode kernels (quants_avx512.c) and the tiles
// (tiles_avx512.c). Private to CKernels; x86 only (dq_simd.h).
#ifndef DQ_VNNI_H
#define DQ_VNNI_H
#include "dq_simd.h"
#if DQ_X86_SIMD
#include <immintrin.h>

// acc + the int16 pairs of p times those of s, as int32, kept as one vpdpwssd. Clang's machine
// combiner (generic tuning) rewrites a chain of _mm512_dpwssd_epi32 as vpmaddwd + vpaddd to
// shorten its latency; the kernels are bound by vector throughput, not latency, and the extra
// vpaddd per product cost 5-10 % (Zen 4, one thread, Q4_K in cache). An integer sum: the bits
// do not depend on how it is chained.
__attribute__((target("avx512f,avx512vnni"), always_inline)) static inline __m512i dq_dpwssd_kept(
    __m512i acc, __m512i p, __m512i s) {
  __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(p), "v"(s));
  return acc;
}
#endif
#endif
