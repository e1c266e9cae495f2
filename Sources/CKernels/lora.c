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

// 32 outputs stay in registers while the rank loop streams one row of Bᵀ each.
__attribute__((target("avx2,fma,f16c"))) static void up_avx2(float *y, const uint16_t *bt,
                                                             int64_t ldbt, const float *u,
                                                             int64_t rank, int64_t n) {
  const int64_t wide = n / 32 * 32;
  for (int64_t j = 0; j < wide; j += 32) {
    __m256 y0 = _mm256_loadu_ps(y + j), y1 = _mm256_loadu_ps(y + j + 8);
    __m256 y2 = _mm256_loadu_ps(y + j + 16), y3 = _mm256_loadu_ps(y + j + 24);
    for (int64_t k = 0; k < rank; k++) {
      const uint16_t *b = bt + k * ldbt + j;
      const __m256 uk = _mm256_set1_ps(u[k]);
      y0 = _mm256_fmadd_ps(uk, load_f16x8(b), y0);
      y1 = _mm256_fmadd_ps(uk, load_f16x8(b + 8), y1);
      y2 = _mm256_fmadd_ps(uk, load_f16x8(b + 16), y2);
      y3 = _mm256_fmadd_ps(uk, load_f16x8(b + 24), y3);
    }
    _mm256_storeu_ps(y + j, y0);
    _mm256_storeu_ps(y + j + 8, y1);
    _mm256_storeu_ps(y + j + 16, y2);
    _mm256_storeu_ps(y + j + 24, y3);
  }
  if (wide < n) dq_lora_up_f16_ref(y + wide, bt + wide, ldbt, u, rank, n - wide);
}
#endif

void dq_lora_down_f16(float *u, const uint16_t *a, int64_t rank, const float *x, int64_t columns,
                      float scale) {
#if DQ_X86_SIMD
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
  if (dq_cpu_has_avx2()) {
    up_avx2(y, bt, ldbt, u, rank, n);
    return;
  }
#endif
  dq_lora_up_f16_ref(y, bt, ldbt, u, rank, n);
}
