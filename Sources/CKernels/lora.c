// The unmerged LoRA update at one projection, y += s·B·(A x), with the factors in F16 so decode
// reads half the bytes of F32 (decode is bound by reading weights). Two steps so callers can
// split them across threads: "down" u = s·A x (rank dot products over the columns), then "up"
// y += Bᵀᵀ u as rank axpys over the output rows, with B stored transposed (rank x rows) so
// each step streams contiguous memory.
#include <stdint.h>

#include "cpu_features.h"
#include "ckernels.h"
#include "dq_ops.h"

#include "dq_simd.h"
#if DQ_X86_SIMD
#include <immintrin.h>
#endif

void dq_lora_down_f16_ref(float *u, const uint16_t *a, int64_t rank, const float *x,
                          int64_t columns, float scale) {
  for (int64_t k = 0; k < rank; k++) {
    float sum = 0;
    for (int64_t j = 0; j < columns; j++) sum += dq_fp16_to_fp32(a[k * columns + j]) * x[j];
    u[k] = scale * sum;
  }
}

void dq_lora_up_f16_ref(float *y, const uint16_t *bt, int64_t ldbt, const float *u, int64_t rank,
                        int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    float sum = 0;
    for (int64_t k = 0; k < rank; k++) sum += u[k] * dq_fp16_to_fp32(bt[k * ldbt + j]);
    y[j] += sum;
  }
}

#if DQ_X86_SIMD
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load_f16x8(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

__attribute__((target("avx2,fma,f16c"))) static float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Two rows of A per pass, so every load of x feeds two FMAs.
__attribute__((target("avx2,fma,f16c"))) static void down_avx2(float *u, const uint16_t *a,
                                                               int64_t rank, const float *x,
                                                               int64_t columns, float scale) {
  const int64_t wide = columns / 16 * 16;
  int64_t k = 0;
  for (; k + 1 < rank; k += 2) {
    const uint16_t *a0 = a + k * columns, *a1 = a0 + columns;
    __m256 s00 = _mm256_setzero_ps(), s01 = _mm256_setzero_ps();
    __m256 s10 = _mm256_setzero_ps(), s11 = _mm256_setzero_ps();
    for (int64_t j = 0; j < wide; j += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
      s00 = _mm256_fmadd_ps(load_f16x8(a0 + j), x0, s00);
      s01 = _mm256_fmadd_ps(load_f16x8(a0 + j + 8), x1, s01);
      s10 = _mm256_fmadd_ps(load_f16x8(a1 + j), x0, s10);
      s11 = _mm256_fmadd_ps(load_f16x8(a1 + j + 8), x1, s11);
    }
    float r0 = hsum256(_mm256_add_ps(s00, s01)), r1 = hsum256(_mm256_add_ps(s10, s11));
    for (int64_t j = wide; j < columns; j++) {
      r0 += dq_fp16_to_fp32(a0[j]) * x[j];
      r1 += dq_fp16_to_fp32(a1[j]) * x[j];
    }
    u[k] = scale * r0;
    u[k + 1] = scale * r1;
  }
  if (k < rank) dq_lora_down_f16_ref(u + k, a + k * columns, 1, x, columns, scale);
}

// One row of A, then of Bᵀ, per pass on 512-bit vectors: the factors are read in memory order
// as one sequential stream, which the hardware prefetchers follow. Several rows side by side
// (shared loads of x, or outputs kept in registers across rows) make several short streams,
// and from memory that halved the rate: one thread over 8 rank-64 adapters' factors for every
// projection of SmolLM2-135M (312 MB) on an AMD EPYC (Zen 4): two rows of A per pass and 32
// outputs against every row of Bᵀ took 40 ms, one row per pass 21 ms (a plain read 15 ms).
#define TARGET512 __attribute__((target("avx512f,avx2,fma,f16c")))
TARGET512 static inline __m512 load_f16x16(const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

TARGET512 static void down_avx512(float *u, const uint16_t *a, int64_t rank, const float *x,
                                  int64_t columns, float scale) {
  const int64_t wide = columns / 32 * 32;
  for (int64_t k = 0; k < rank; k++) {
    const uint16_t *row = a + k * columns;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    for (int64_t j = 0; j < wide; j += 32) {
      s0 = _mm512_fmadd_ps(load_f16x16(row + j), _mm512_loadu_ps(x + j), s0);
      s1 = _mm512_fmadd_ps(load_f16x16(row + j + 16), _mm512_loadu_ps(x + j + 16), s1);
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (int64_t j = wide; j < columns; j++) r += dq_fp16_to_fp32(row[j]) * x[j];
    u[k] = scale * r;
  }
}

// y += u_k Bᵀ[k] for k in order: each output is one fma chain over the ranks (the bits of
// up_avx2), with y's stretch (at most a few KiB) in L1 throughout.
TARGET512 static void up_avx512(float *y, const uint16_t *bt, int64_t ldbt, const float *u,
                                int64_t rank, int64_t n) {
  const int64_t wide = n / 32 * 32;
  for (int64_t k = 0; k < rank; k++) {
    const uint16_t *b = bt + k * ldbt;
    const __m512 uk = _mm512_set1_ps(u[k]);
    for (int64_t j = 0; j < wide; j += 32) {
      _mm512_storeu_ps(y + j, _mm512_fmadd_ps(uk, load_f16x16(b + j), _mm512_loadu_ps(y + j)));
      _mm512_storeu_ps(y + j + 16, _mm512_fmadd_ps(uk, load_f16x16(b + j + 16), _mm512_loadu_ps(y + j + 16)));
    }
  }
  if (wide < n) dq_lora_up_f16_ref(y + wide, bt + wide, ldbt, u, rank, n - wide);
}

// The same walk on 256-bit vectors.
__attribute__((target("avx2,fma,f16c"))) static void up_avx2(float *y, const uint16_t *bt,
                                                             int64_t ldbt, const float *u,
                                                             int64_t rank, int64_t n) {
  const int64_t wide = n / 32 * 32;
  for (int64_t k = 0; k < rank; k++) {
    const uint16_t *b = bt + k * ldbt;
    const __m256 uk = _mm256_set1_ps(u[k]);
    for (int64_t j = 0; j < wide; j += 8)
      _mm256_storeu_ps(y + j, _mm256_fmadd_ps(uk, load_f16x8(b + j), _mm256_loadu_ps(y + j)));
  }
  if (wide < n) dq_lora_up_f16_ref(y + wide, bt + wide, ldbt, u, rank, n - wide);
}
#endif

void dq_lora_down_f16(float *u, const uint16_t *a, int64_t rank, const float *x, int64_t columns,
                      float scale) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512f()) {
    down_avx512(u, a, rank, x, columns, scale);
    return;
  }
  if (dq_cpu_has_avx2()) {
    down_avx2(u, a, rank, x, columns, scale);
    return;
  }
#endif
  dq_lora_down_f16_ref(u, a, rank, x, columns, scale);
}

void dq_lora_up_f16(float *y, const uint16_t *bt, int64_t ldbt, const float *u, int64_t rank,
                    int64_t n) {
#if DQ_X86_SIMD
  if (dq_cpu_has_avx512f()) {
    up_avx512(y, bt, ldbt, u, rank, n);
    return;
  }
  if (dq_cpu_has_avx2()) {
    up_avx2(y, bt, ldbt, u, rank, n);
    return;
  }
#endif
  dq_lora_up_f16_ref(y, bt, ldbt, u, rank, n);
}
