// AVX2/FMA/F16C twins of the reference kernels in quants_ref.c, compiled for those extensions
// function by function (target attribute) so the rest of the library stays baseline x86-64;
// dispatch.c calls them only when the CPU reports the features. Each dot kernel computes the
// same integer sums per block as its reference; only the order of the fp32 accumulation differs.
// The dequantizers and the activation quantizers give the reference's exact bits.
//
// Here: dots for every weight type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
// Q6_K), a two-row Q4_1 matvec kernel, dequantizers for all but F32, Q8_0/Q8_1/Q8_K quantizers.
//
// Assumption shared with ggml: int8 ACTIVATION codes (q8_0/q8_1/q8_K) are in [-127, 127], which
// every quantizer here guarantees. Weight codes may be anything a file holds, -128 included: the
// sign trick turns a -128 weight into the unsigned 128, and 2*128*127 still fits maddubs' int16.
#pragma STDC FP_CONTRACT OFF
#include "quants.h"
#include "dq_simd.h"

#if DQ_X86_SIMD
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))

TARGET static inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// movd (zero-extending) rather than _cvtsh_ss: the latter lets the compiler insert the half
// into whatever register is at hand, often an accumulator, which chains every block's scale
// conversion behind the previous block's FMA.
TARGET static inline float h2f(dq_half h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h)));
}

// 32 4-bit codes: element j (low nibble of qs[j]) in bytes 0..15, j+16 (high nibble) in 16..31.
TARGET static inline __m256i unpack_nibbles(const uint8_t *qs) {
  const __m128i b = _mm_loadu_si128((const __m128i *)qs);
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0F));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F));
  return _mm256_set_m128i(hi, lo);
}

// The 32 bits of qh spread to bytes: 0xFF where the bit is set.
TARGET static inline __m256i bits_to_bytes(uint32_t qh) {
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                         0x0101010101010101LL, 0x0000000000000000LL);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
  const __m256i mask = _mm256_set1_epi64x((long long)0x7FBFDFEFF7FBFDFEULL);
  v = _mm256_or_si256(v, mask);  // every bit except the one this byte tests
  return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

// Eight int32 partial sums of u8 (0..63) x s8 products.
TARGET static inline __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Eight int32 partial sums of s8 x s8 products (codes in [-127, 127]).
TARGET static inline __m256i dot_s8_s8(__m256i a, __m256i b) {
  return dot_u8_s8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

// ---- float dots ---------------------------------------------------------------------------

TARGET static float dot_f32(int64_t n, const void *w, const void *x) {
  const float *a = w, *b = x;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

TARGET static inline __m256 load_f16x8(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

TARGET static inline __m256 load_bf16x8(const uint16_t *p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

TARGET static float dot_f16(int64_t n, const void *w, const void *x) {
  const uint16_t *a = w;
  const float *b = x;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(load_f16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(load_f16x8(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(load_f16x8(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) s += h2f(a[i]) * b[i];
  return s;
}

TARGET static float dot_bf16(int64_t n, const void *w, const void *x) {
  const uint16_t *a = w;
  const float *b = x;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(load_bf16x8(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(load_bf16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(load_bf16x8(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(load_bf16x8(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load_bf16x8(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) s += dq_bf16_to_fp32(a[i]) * b[i];
  return s;
}

// ---- 32-element block dots ----------------------------------------------------------------

// Products of the fp16 scales of two weight blocks and two activation blocks, with one F16C
// conversion: lanes 0 and 1 = wd0*xd0, wd1*xd1.
TARGET static inline __m128 scale_pair(dq_half w0, dq_half w1, dq_half x0, dq_half x1) {
  const uint64_t h = (uint64_t)w0 | (uint64_t)w1 << 16 | (uint64_t)x0 << 32 | (uint64_t)x1 << 48;
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)h));
  return _mm_mul_ps(f, _mm_movehl_ps(f, f));
}

// q8_0 x q8_0, two blocks per iteration into two accumulators.
TARGET static float dot_q8_0_q8_0(int64_t n, const void *w, const void *x) {
  const block_q8_0 *a = w;
  const block_q8_0 *b = x;
  const int64_t nb = n / QK8_0;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    _mm_prefetch((const char *)(a + i + 8), _MM_HINT_T0);
    const __m256i p0 = dot_s8_s8(_mm256_loadu_si256((const __m256i *)a[i].qs),
                                 _mm256_loadu_si256((const __m256i *)b[i].qs));
    const __m256i p1 = dot_s8_s8(_mm256_loadu_si256((const __m256i *)a[i + 1].qs),
                                 _mm256_loadu_si256((const __m256i *)b[i + 1].qs));
    const __m128 d = scale_pair(a[i].d, a[i + 1].d, b[i].d, b[i + 1].d);
    acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d)), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; i < nb; i++) {
    const __m256i p = dot_s8_s8(_mm256_loadu_si256((const __m256i *)a[i].qs),
                                _mm256_loadu_si256((const __m256i *)b[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum_ps(_mm256_add_ps(acc0, acc1));
}

// q4_1 x q8_1: sum d dx (q.y) + m s. The (d, m) and (dx, s) half pairs are adjacent, so one
// F16C conversion of each gives both products: lane 0 = d dx, lane 1 = m s.
TARGET static inline __m128 q41_scales(const void *wd, const void *xd) {
  uint32_t u, v;
  memcpy(&u, wd, 4);
  memcpy(&v, xd, 4);
  return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_cvtph_ps(_mm_cvtsi32_si128((int)v)));
}

// Two blocks' (d, m) and (dx, s) at once: lanes = d0 dx0, m0 s0, d1 dx1, m1 s1.
TARGET static inline __m128 q41_scales2(const block_q4_1 *a, const block_q8_1 *b) {
  uint32_t w0, w1, x0, x1;
  memcpy(&w0, &a[0].d, 4);
  memcpy(&w1, &a[1].d, 4);
  memcpy(&x0, &b[0].d, 4);
  memcpy(&x1, &b[1].d, 4);
  const __m128 fw = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)w0 | (uint64_t)w1 << 32)));
  const __m128 fx = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)x0 | (uint64_t)x1 << 32)));
  return _mm_mul_ps(fw, fx);
}

TARGET static float dot_q4_1_q8_1(int64_t n, const void *w, const void *x) {
  const block_q4_1 *a = w;
  const block_q8_1 *b = x;
  const int64_t nb = n / QK8_1;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m128 accm = _mm_setzero_ps();  // lanes 1 and 3 collect the m s terms
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    _mm_prefetch((const char *)(a + i + 8), _MM_HINT_T0);
    const __m128 sc = q41_scales2(a + i, b + i);
    const __m256i p0 = dot_u8_s8(unpack_nibbles(a[i].qs), _mm256_loadu_si256((const __m256i *)b[i].qs));
    const __m256i p1 =
        dot_u8_s8(unpack_nibbles(a[i + 1].qs), _mm256_loadu_si256((const __m256i *)b[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehl_ps(sc, sc)), _mm256_cvtepi32_ps(p1), acc1);
    accm = _mm_add_ps(accm, sc);
  }
  accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));  // lane 1 = all m s so far
  for (; i < nb; i++) {
    const __m128 sc = q41_scales(&a[i].d, &b[i].d);
    const __m256i p = dot_u8_s8(unpack_nibbles(a[i].qs), _mm256_loadu_si256((const __m256i *)b[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(p), acc0);
    accm = _mm_add_ps(accm, sc);
  }
  return hsum_ps(_mm256_add_ps(acc0, acc1)) + _mm_cvtss_f32(_mm_shuffle_ps(accm, accm, 1));
}

// ---- two rows at a time (matvec) -----------------------------------------------------------
// Two weight rows against one activation row, sharing the activation loads and scale
// conversions (measured ~8% faster than two one-row calls for q4_1; for q8_0 it gained nothing,
// so q8_0 has none). Each row's arithmetic is exactly that of the one-row kernel above (same
// accumulators, same order), so a matvec gives the same bits as dq_vec_dot per row.

TARGET static void dot2_q4_1_q8_1(int64_t n, const void *w0, const void *w1, const void *x, float *y) {
  const block_q4_1 *a = w0, *c = w1;
  const block_q8_1 *b = x;
  const int64_t nb = n / QK8_1;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
  __m128 am = _mm_setzero_ps(), cm = am;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    uint32_t x0, x1, u0, u1, v0, v1;
    memcpy(&x0, &b[i].d, 4);
    memcpy(&x1, &b[i + 1].d, 4);
    memcpy(&u0, &a[i].d, 4);
    memcpy(&u1, &a[i + 1].d, 4);
    memcpy(&v0, &c[i].d, 4);
    memcpy(&v1, &c[i + 1].d, 4);
    const __m128 fx = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)x0 | (uint64_t)x1 << 32)));
    const __m128 sa = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)u0 | (uint64_t)u1 << 32))), fx);
    const __m128 sc = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)v0 | (uint64_t)v1 << 32))), fx);
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const __m256i y1 = _mm256_loadu_si256((const __m256i *)b[i + 1].qs);
    const __m256i pa0 = dot_u8_s8(unpack_nibbles(a[i].qs), y0);
    const __m256i pa1 = dot_u8_s8(unpack_nibbles(a[i + 1].qs), y1);
    const __m256i pc0 = dot_u8_s8(unpack_nibbles(c[i].qs), y0);
    const __m256i pc1 = dot_u8_s8(unpack_nibbles(c[i + 1].qs), y1);
    a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(sa), _mm256_cvtepi32_ps(pa0), a0);
    a1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehl_ps(sa, sa)), _mm256_cvtepi32_ps(pa1), a1);
    c0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(pc0), c0);
    c1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehl_ps(sc, sc)), _mm256_cvtepi32_ps(pc1), c1);
    am = _mm_add_ps(am, sa);
    cm = _mm_add_ps(cm, sc);
  }
  am = _mm_add_ps(am, _mm_movehl_ps(am, am));
  cm = _mm_add_ps(cm, _mm_movehl_ps(cm, cm));
  for (; i < nb; i++) {
    const __m256i yv = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const __m128 sa = q41_scales(&a[i].d, &b[i].d), sc = q41_scales(&c[i].d, &b[i].d);
    a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(sa), _mm256_cvtepi32_ps(dot_u8_s8(unpack_nibbles(a[i].qs), yv)), a0);
    c0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(dot_u8_s8(unpack_nibbles(c[i].qs), yv)), c0);
    am = _mm_add_ps(am, sa);
    cm = _mm_add_ps(cm, sc);
  }
  y[0] = hsum_ps(_mm256_add_ps(a0, a1)) + _mm_cvtss_f32(_mm_shuffle_ps(am, am, 1));
  y[1] = hsum_ps(_mm256_add_ps(c0, c1)) + _mm_cvtss_f32(_mm_shuffle_ps(cm, cm, 1));
}

TARGET static float dot_q4_0_q8_0(int64_t n, const void *w, const void *x) {
  const block_q4_0 *a = w;
  const block_q8_0 *b = x;
  const int64_t nb = n / QK8_0;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const __m256i q = _mm256_sub_epi8(unpack_nibbles(a[i].qs), _mm256_set1_epi8(8));
    const __m256i p = dot_s8_s8(q, _mm256_loadu_si256((const __m256i *)b[i].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), _mm256_cvtepi32_ps(p), acc);
  }
  return hsum_ps(acc);
}

TARGET static float dot_q5_0_q8_0(int64_t n, const void *w, const void *x) {
  const block_q5_0 *a = w;
  const block_q8_0 *b = x;
  const int64_t nb = n / QK8_0;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    // q - 16 = low nibble - (bit clear ? 16 : 0): or 0xF0 into the bytes whose fifth bit is clear
    const __m256i hi = _mm256_andnot_si256(bits_to_bytes(dq_load_u32le(a[i].qh)), _mm256_set1_epi8((char)0xF0));
    const __m256i q = _mm256_or_si256(unpack_nibbles(a[i].qs), hi);
    const __m256i p = dot_s8_s8(q, _mm256_loadu_si256((const __m256i *)b[i].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), _mm256_cvtepi32_ps(p), acc);
  }
  return hsum_ps(acc);
}

TARGET static float dot_q5_1_q8_1(int64_t n, const void *w, const void *x) {
  const block_q5_1 *a = w;
  const block_q8_1 *b = x;
  const int64_t nb = n / QK8_1;
  __m256 acc = _mm256_setzero_ps();
  __m128 accm = _mm_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const __m128 sc = q41_scales(&a[i].d, &b[i].d);
    const __m256i hi = _mm256_and_si256(bits_to_bytes(dq_load_u32le(a[i].qh)), _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(unpack_nibbles(a[i].qs), hi);
    const __m256i p = dot_u8_s8(q, _mm256_loadu_si256((const __m256i *)b[i].qs));
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(p), acc);
    accm = _mm_add_ps(accm, sc);
  }
  return hsum_ps(acc) + _mm_cvtss_f32(_mm_shuffle_ps(accm, accm, 1));
}

// ---- k-quant dots -------------------------------------------------------------------------

// Sub-block scales and mins of a q4_K/q5_K super-block as 8 x int32 each.
static inline void k4_scales(const uint8_t *scales, int32_t sc[8], int32_t m[8]) {
  for (int j = 0; j < 8; j++) {
    uint8_t s, mm;
    dq_get_scale_min_k4(j, scales, &s, &mm);
    sc[j] = s;
    m[j] = mm;
  }
}

TARGET static float dot_q4_K_q8_K(int64_t n, const void *w, const void *x) {
  const block_q4_K *a = w;
  const block_q8_K *b = x;
  float s = 0;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t sc[8], mn[8];
    k4_scales(a[i].scales, sc, mn);
    // mins . (pairwise bsums): 8 int16 sums of 32 y each
    const __m256i bs = _mm256_loadu_si256((const __m256i *)b[i].bsums);
    const __m256i ysum32 = _mm256_madd_epi16(bs, _mm256_set1_epi16(1));  // 8 x int32
    const __m256i summ_v = _mm256_mullo_epi32(ysum32, _mm256_loadu_si256((const __m256i *)mn));
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * j));
      const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * j));
      const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * j + 32));
      const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16((short)sc[2 * j]));
      const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16((short)sc[2 * j + 1]));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    const __m256 dsum = _mm256_cvtepi32_ps(sumi);
    const __m256 msum = _mm256_cvtepi32_ps(summ_v);
    s += b[i].d * h2f(a[i].d) * hsum_ps(dsum) - b[i].d * h2f(a[i].dmin) * hsum_ps(msum);
  }
  return s;
}

TARGET static float dot_q5_K_q8_K(int64_t n, const void *w, const void *x) {
  const block_q5_K *a = w;
  const block_q8_K *b = x;
  float s = 0;
  const __m256i m4 = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(0x10);
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t sc[8], mn[8];
    k4_scales(a[i].scales, sc, mn);
    const __m256i bs = _mm256_loadu_si256((const __m256i *)b[i].bsums);
    const __m256i ysum32 = _mm256_madd_epi16(bs, _mm256_set1_epi16(1));
    const __m256i summ_v = _mm256_mullo_epi32(ysum32, _mm256_loadu_si256((const __m256i *)mn));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)a[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * j));
      // bit 2j of qh[l] -> 0x10 for the low half, bit 2j+1 -> 0x10 for the high half
      const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4), bit);
      const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j + 1), 4), bit);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
      const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * j));
      const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * j + 32));
      const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), _mm256_set1_epi16((short)sc[2 * j]));
      const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), _mm256_set1_epi16((short)sc[2 * j + 1]));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    s += b[i].d * h2f(a[i].d) * hsum_ps(_mm256_cvtepi32_ps(sumi)) -
         b[i].d * h2f(a[i].dmin) * hsum_ps(_mm256_cvtepi32_ps(summ_v));
  }
  return s;
}

// q6_K: codes q in 0..63 (before the -32 offset); sum (q-32) y = sum q y - 32 sum y, with the
// y sums per 16 taken from bsums.
TARGET static float dot_q6_K_q8_K(int64_t n, const void *w, const void *x) {
  const block_q6_K *a = w;
  const block_q8_K *b = x;
  float s = 0;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  for (int64_t i = 0; i < n / QK_K; i++) {
    __m256i sumi = _mm256_setzero_si256();
    for (int half = 0; half < 2; half++) {
      const uint8_t *ql = a[i].ql + 64 * half, *qhp = a[i].qh + 32 * half;
      const int8_t *y = b[i].qs + 128 * half;
      const int8_t *scp = a[i].scales + 8 * half;
      const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
      const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
      const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
      for (int k = 0; k < 4; k++) {
        const __m256i yv = _mm256_loadu_si256((const __m256i *)(y + 32 * k));
        // 16 int16 pair sums: lanes 0..7 belong to sub-block 2k, lanes 8..15 to 2k+1
        const __m256i p16 = _mm256_maddubs_epi16(q[k], yv);  // <= 63*127*2, no saturation
        const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(scp[2 * k + 1]), _mm_set1_epi16(scp[2 * k]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, scv));
      }
    }
    // offset term: 32 * sum_k scales[k] * bsums[k]
    const __m256i bs = _mm256_loadu_si256((const __m256i *)b[i].bsums);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
    const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
    sumi = _mm256_sub_epi32(sumi, off);
    s += b[i].d * h2f(a[i].d) * hsum_ps(_mm256_cvtepi32_ps(sumi));
  }
  return s;
}

// ---- dequantize ---------------------------------------------------------------------------
// Same fp32 operations as the reference (separate multiply and add, no FMA), so the values are
// bit-identical to it.

TARGET static void dequant_f16(const void *src, float *dst, int64_t n) {
  const uint16_t *h = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16x8(h + i));
  for (; i < n; i++) dst[i] = h2f(h[i]);
}

TARGET static void dequant_bf16(const void *src, float *dst, int64_t n) {
  const uint16_t *h = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16x8(h + i));
  for (; i < n; i++) dst[i] = dq_bf16_to_fp32(h[i]);
}

// 32 floats from 32 int8 codes already in element order: d*q (mode 0), d*q + m (mode 1) or
// d*q - m (mode 2); d_lo scales elements 0..15, d_hi 16..31.
enum { AFF_NONE, AFF_ADD, AFF_SUB };
TARGET static inline void store_codes2(float *dst, __m256i q, __m256 d_lo, __m256 d_hi, __m256 m, int mode) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m256i v[4] = {_mm256_cvtepi8_epi32(lo), _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)),
                        _mm256_cvtepi8_epi32(hi), _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))};
  for (int k = 0; k < 4; k++) {
    __m256 f = _mm256_mul_ps(k < 2 ? d_lo : d_hi, _mm256_cvtepi32_ps(v[k]));
    if (mode == AFF_ADD) f = _mm256_add_ps(f, m);
    if (mode == AFF_SUB) f = _mm256_sub_ps(f, m);
    _mm256_storeu_ps(dst + 8 * k, f);
  }
}

TARGET static inline void store_codes(float *dst, __m256i q, __m256 d, __m256 m, int has_m) {
  store_codes2(dst, q, d, d, m, has_m ? AFF_ADD : AFF_NONE);
}

TARGET static void dequant_q4_0(const void *src, float *dst, int64_t n) {
  const block_q4_0 *b = src;
  for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
    const __m256i q = _mm256_sub_epi8(unpack_nibbles(b[i].qs), _mm256_set1_epi8(8));
    store_codes(dst, q, _mm256_set1_ps(h2f(b[i].d)), _mm256_setzero_ps(), 0);
  }
}

TARGET static void dequant_q4_1(const void *src, float *dst, int64_t n) {
  const block_q4_1 *b = src;
  for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
    store_codes(dst, unpack_nibbles(b[i].qs), _mm256_set1_ps(h2f(b[i].d)), _mm256_set1_ps(h2f(b[i].m)), 1);
  }
}

TARGET static void dequant_q5_0(const void *src, float *dst, int64_t n) {
  const block_q5_0 *b = src;
  for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
    const __m256i hi = _mm256_andnot_si256(bits_to_bytes(dq_load_u32le(b[i].qh)), _mm256_set1_epi8((char)0xF0));
    store_codes(dst, _mm256_or_si256(unpack_nibbles(b[i].qs), hi), _mm256_set1_ps(h2f(b[i].d)),
                _mm256_setzero_ps(), 0);
  }
}

TARGET static void dequant_q5_1(const void *src, float *dst, int64_t n) {
  const block_q5_1 *b = src;
  for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes(dq_load_u32le(b[i].qh)), _mm256_set1_epi8(0x10));
    store_codes(dst, _mm256_or_si256(unpack_nibbles(b[i].qs), hi), _mm256_set1_ps(h2f(b[i].d)),
                _mm256_set1_ps(h2f(b[i].m)), 1);
  }
}

TARGET static void dequant_q8_0(const void *src, float *dst, int64_t n) {
  const block_q8_0 *b = src;
  for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
    store_codes(dst, _mm256_loadu_si256((const __m256i *)b[i].qs), _mm256_set1_ps(h2f(b[i].d)),
                _mm256_setzero_ps(), 0);
  }
}

// k-quants: scales are formed in scalar fp32 exactly as the reference does ((d*sc), (dmin*m)),
// then y = (d*sc)*q - dmin*m per lane.
TARGET static void dequant_q4_K(const void *src, float *dst, int64_t n) {
  const block_q4_K *b = src;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int j = 0; j < 4; j++, dst += 64) {
      uint8_t sc0, m0, sc1, m1;
      dq_get_scale_min_k4(2 * j, b[i].scales, &sc0, &m0);
      dq_get_scale_min_k4(2 * j + 1, b[i].scales, &sc1, &m1);
      const __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * j));
      const __m256 d0 = _mm256_set1_ps(d * (float)sc0), d1 = _mm256_set1_ps(d * (float)sc1);
      store_codes2(dst, _mm256_and_si256(q, m4), d0, d0, _mm256_set1_ps(dmin * (float)m0), AFF_SUB);
      store_codes2(dst + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), d1, d1,
                   _mm256_set1_ps(dmin * (float)m1), AFF_SUB);
    }
  }
}

TARGET static void dequant_q5_K(const void *src, float *dst, int64_t n) {
  const block_q5_K *b = src;
  const __m256i m4 = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(0x10);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    const __m256i qh = _mm256_loadu_si256((const __m256i *)b[i].qh);
    for (int j = 0; j < 4; j++, dst += 64) {
      uint8_t sc0, m0, sc1, m1;
      dq_get_scale_min_k4(2 * j, b[i].scales, &sc0, &m0);
      dq_get_scale_min_k4(2 * j + 1, b[i].scales, &sc1, &m1);
      const __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * j));
      const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4), bit);
      const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j + 1), 4), bit);
      const __m256 d0 = _mm256_set1_ps(d * (float)sc0), d1 = _mm256_set1_ps(d * (float)sc1);
      store_codes2(dst, _mm256_or_si256(_mm256_and_si256(q, m4), h0), d0, d0,
                   _mm256_set1_ps(dmin * (float)m0), AFF_SUB);
      store_codes2(dst + 32, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1), d1, d1,
                   _mm256_set1_ps(dmin * (float)m1), AFF_SUB);
    }
  }
}

TARGET static void dequant_q6_K(const void *src, float *dst, int64_t n) {
  const block_q6_K *b = src;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03), off = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < n / QK_K; i++) {
    const float d = h2f(b[i].d);
    for (int half = 0; half < 2; half++) {
      const uint8_t *ql = b[i].ql + 64 * half;
      const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
      const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
      const __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * half));
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
      for (int k = 0; k < 4; k++, dst += 32) {
        const int s = 8 * half + 2 * k;
        store_codes2(dst, _mm256_sub_epi8(q[k], off), _mm256_set1_ps(d * (float)b[i].scales[s]),
                     _mm256_set1_ps(d * (float)b[i].scales[s + 1]), _mm256_setzero_ps(), AFF_NONE);
      }
    }
  }
}

// ---- activation quantizers ----------------------------------------------------------------
// Same bytes as the reference: d = amax/127 and id = 1/d in scalar fp32, v = x*id per lane (one
// rounding, like the scalar multiply), then roundf's halves-away-from-zero, done exactly as
// trunc(v + copysign(0.5 - 2^-25, v)) (four instructions instead of nine). Exact for |v| < 2^22
// (here |v| <= 127): v + c is exact or rounds up to the next integer only when v is at least a
// half (k + 0.5 gives k + 1 - 2^-25, which rounds to k + 1); 0.49999997 stays 0, where adding
// 0.5 would round to 1.

TARGET static inline __m256i round_away_epi32(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 almost_half = _mm256_or_ps(_mm256_and_ps(sign, v), _mm256_set1_ps(0x1.fffffep-2f));
  return _mm256_cvttps_epi32(_mm256_add_ps(v, almost_half));
}

// One block of 32: writes qs, returns the sum of the codes, *d_out = amax/127.
TARGET static inline int quant_q8_block_avx2(const float *x, int8_t *qs, float *d_out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 mx = _mm256_setzero_ps();
  for (int k = 0; k < 4; k++) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float d = _mm_cvtss_f32(m) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int k = 0; k < 4; k++) q[k] = round_away_epi32(_mm256_mul_ps(v[k], idv));
  // pack 32 x int32 -> 32 x int8 in element order (packs interleave 128-bit lanes: fix with a permute)
  const __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
  __m256i b = _mm256_packs_epi16(p01, p23);
  b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256((__m256i *)qs, b);
  const __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  *d_out = d;
  return _mm_cvtsi128_si32(s);
}

TARGET static void quant_q8_0(const float *x, void *dst, int64_t n) {
  block_q8_0 *b = dst;
  for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
    float d;
    quant_q8_block_avx2(x, b[i].qs, &d);
    b[i].d = (dq_half)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(d), _MM_FROUND_TO_NEAREST_INT), 0);
  }
}

TARGET static void quant_q8_1(const float *x, void *dst, int64_t n) {
  block_q8_1 *b = dst;
  for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
    float d;
    const int sum = quant_q8_block_avx2(x, b[i].qs, &d);
    const __m128i h = _mm_cvtps_ph(_mm_setr_ps(d, (float)sum * d, 0, 0), _MM_FROUND_TO_NEAREST_INT);
    b[i].d = (dq_half)_mm_extract_epi16(h, 0);
    b[i].s = (dq_half)_mm_extract_epi16(h, 1);
  }
}

// q8_K: iscale = -127/max with max the first element of largest magnitude (signed), q = min(127,
// round-half-even(iscale*x)), d = 1/iscale, bsums per 16. The scan for max keeps the
// reference's choice between +a and -a.
TARGET static void quant_q8_K(const float *x, void *dst, int64_t n) {
  block_q8_K *b = dst;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
    __m256 mx = _mm256_setzero_ps();
    for (int k = 0; k < QK_K; k += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    if (amax == 0.0f) {
      memset(&b[i], 0, sizeof b[i]);
      continue;
    }
    // the first element of that magnitude, 8 at a time (a scalar scan took over half of
    // the function on activations whose largest element sits anywhere in the block)
    float max = amax;
    const __m256 target = _mm256_set1_ps(amax);
    for (int k = 0; k < QK_K; k += 8) {
      const __m256 v = _mm256_loadu_ps(x + k);
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), target, _CMP_EQ_OQ));
      if (hit) {
        max = x[k + __builtin_ctz((unsigned)hit)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 is = _mm256_set1_ps(iscale), hi = _mm256_set1_ps(127.0f);
    for (int k = 0; k < QK_K; k += 32) {
      __m256i q[4];
      for (int u = 0; u < 4; u++) {
        const __m256 v = _mm256_round_ps(_mm256_mul_ps(is, _mm256_loadu_ps(x + k + 8 * u)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q[u] = _mm256_cvtps_epi32(_mm256_min_ps(v, hi));
      }
      const __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
      __m256i bytes = _mm256_packs_epi16(p01, p23);
      bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256((__m256i *)(b[i].qs + k), bytes);
      // two sums of 16: elements k..k+15 are q[0], q[1]; k+16..k+31 are q[2], q[3]
      const __m256i s0 = _mm256_add_epi32(q[0], q[1]), s1 = _mm256_add_epi32(q[2], q[3]);
      const __m256i h = _mm256_hadd_epi32(s0, s1);  // per lane: s0 pairs, s1 pairs
      const __m256i h2 = _mm256_hadd_epi32(h, h);
      const __m128i t = _mm_add_epi32(_mm256_castsi256_si128(h2), _mm256_extracti128_si256(h2, 1));
      b[i].bsums[k / 16] = (int16_t)_mm_cvtsi128_si32(t);
      b[i].bsums[k / 16 + 1] = (int16_t)_mm_extract_epi32(t, 1);
    }
    b[i].d = 1.0f / iscale;
  }
}

dq_quant_fn dq_avx2_quant_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_Q8_0: return quant_q8_0;
    case DQ_TYPE_Q8_1: return quant_q8_1;
    case DQ_TYPE_Q8_K: return quant_q8_K;
    default: return NULL;
  }
}

dq_dot_fn dq_avx2_dot_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_F32: return dot_f32;
    case DQ_TYPE_F16: return dot_f16;
    case DQ_TYPE_BF16: return dot_bf16;
    case DQ_TYPE_Q4_0: return dot_q4_0_q8_0;
    case DQ_TYPE_Q4_1: return dot_q4_1_q8_1;
    case DQ_TYPE_Q5_0: return dot_q5_0_q8_0;
    case DQ_TYPE_Q5_1: return dot_q5_1_q8_1;
    case DQ_TYPE_Q8_0: return dot_q8_0_q8_0;
    case DQ_TYPE_Q4_K: return dot_q4_K_q8_K;
    case DQ_TYPE_Q5_K: return dot_q5_K_q8_K;
    case DQ_TYPE_Q6_K: return dot_q6_K_q8_K;
    default: return NULL;
  }
}

dq_dot2_fn dq_avx2_dot2_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_Q4_1: return dot2_q4_1_q8_1;
    default: return NULL;
  }
}

dq_dequant_fn dq_avx2_dequant_kernel(uint32_t type) {
  switch (type) {
    case DQ_TYPE_F16: return dequant_f16;
    case DQ_TYPE_BF16: return dequant_bf16;
    case DQ_TYPE_Q4_0: return dequant_q4_0;
    case DQ_TYPE_Q4_1: return dequant_q4_1;
    case DQ_TYPE_Q5_0: return dequant_q5_0;
    case DQ_TYPE_Q5_1: return dequant_q5_1;
    case DQ_TYPE_Q8_0: return dequant_q8_0;
    case DQ_TYPE_Q4_K: return dequant_q4_K;
    case DQ_TYPE_Q5_K: return dequant_q5_K;
    case DQ_TYPE_Q6_K: return dequant_q6_K;
    default: return NULL;  // F32 is a copy
  }
}

// ---- four tokens at a time (batched matmul) ------------------------------------------------
// One weight row against four activation rows: the nibbles of each weight block are unpacked
// once and used four times. Per token the arithmetic is exactly dot_q4_1_q8_1's (same integer
// sums, same accumulators, same order), so a batch gives the same bits as one token at a time.
// The integer dot is a parameter: maddubs+madd on AVX2, one dpbusd with AVX-VNNI (exact in
// both: the u8 x s8 pair sums never reach the int16 limit that maddubs saturates at).

// The (d, m) or (d, s) halves of two consecutive blocks as four floats, as q41_scales2 reads them.
TARGET static inline __m128 q41_halves2(const void *first, const void *second) {
  uint32_t u0, u1;
  memcpy(&u0, first, 4);
  memcpy(&u1, second, 4);
  return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)u0 | (uint64_t)u1 << 32)));
}

#define DEFINE_TILE4_Q4_1(NAME, ATTR, DOT)                                                        \
  ATTR static void NAME(int64_t n, const void *w, const void *x, size_t x_stride, float *y,      \
                        int64_t ldy) {                                                          \
    const block_q4_1 *a = w;                                                                     \
    const block_q8_1 *b[4];                                                                      \
    for (int j = 0; j < 4; j++) b[j] = (const block_q8_1 *)((const char *)x + j * x_stride);    \
    const int64_t nb = n / QK8_1;                                                                \
    __m256 acc0[4], acc1[4];                                                                     \
    __m128 accm[4];                                                                              \
    for (int j = 0; j < 4; j++) {                                                                \
      acc0[j] = _mm256_setzero_ps();                                                             \
      acc1[j] = _mm256_setzero_ps();                                                             \
      accm[j] = _mm_setzero_ps();                                                                \
    }                                                                                            \
    int64_t i = 0;                                                                               \
    for (; i + 2 <= nb; i += 2) {                                                                \
      const __m256i q0 = unpack_nibbles(a[i].qs), q1 = unpack_nibbles(a[i + 1].qs);             \
      const __m128 fw = q41_halves2(&a[i].d, &a[i + 1].d);                                       \
      for (int j = 0; j < 4; j++) {                                                              \
        const __m128 sc = _mm_mul_ps(fw, q41_halves2(&b[j][i].d, &b[j][i + 1].d));               \
        const __m256i p0 = DOT(q0, _mm256_loadu_si256((const __m256i *)b[j][i].qs));             \
        const __m256i p1 = DOT(q1, _mm256_loadu_si256((const __m256i *)b[j][i + 1].qs));         \
        acc0[j] = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(p0), acc0[j]);   \
        acc1[j] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehl_ps(sc, sc)),                  \
                                  _mm256_cvtepi32_ps(p1), acc1[j]);                              \
        accm[j] = _mm_add_ps(accm[j], sc);                                                       \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < 4; j++) accm[j] = _mm_add_ps(accm[j], _mm_movehl_ps(accm[j], accm[j]));  \
    for (; i < nb; i++) {                                                                        \
      const __m256i q = unpack_nibbles(a[i].qs);                                                 \
      for (int j = 0; j < 4; j++) {                                                              \
        const __m128 sc = q41_scales(&a[i].d, &b[j][i].d);                                       \
        const __m256i p = DOT(q, _mm256_loadu_si256((const __m256i *)b[j][i].qs));               \
        acc0[j] = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(p), acc0[j]);    \
        accm[j] = _mm_add_ps(accm[j], sc);                                                       \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < 4; j++)                                                                  \
      y[j * ldy] = hsum_ps(_mm256_add_ps(acc0[j], acc1[j])) +                                    \
                   _mm_cvtss_f32(_mm_shuffle_ps(accm[j], accm[j], 1));                           \
  }

DEFINE_TILE4_Q4_1(tile4_q4_1_q8_1, TARGET, dot_u8_s8)

#define TARGET_VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
TARGET_VNNI static inline __m256i dot_u8_s8_vnni(__m256i u, __m256i s) {
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
}
DEFINE_TILE4_Q4_1(tile4_q4_1_q8_1_vnni, TARGET_VNNI, dot_u8_s8_vnni)

// Q8_0 x Q8_0 for four tokens: |w| and the sign pattern of each weight block are computed once;
// per token the integer sums, accumulators and order are exactly dot_q8_0_q8_0's.
#define DEFINE_TILE4_Q8_0(NAME, ATTR, DOT)                                                        \
  ATTR static void NAME(int64_t n, const void *w, const void *x, size_t x_stride, float *y,      \
                        int64_t ldy) {                                                          \
    const block_q8_0 *a = w;                                                                     \
    const block_q8_0 *b[4];                                                                      \
    for (int j = 0; j < 4; j++) b[j] = (const block_q8_0 *)((const char *)x + j * x_stride);    \
    const int64_t nb = n / QK8_0;                                                                \
    __m256 acc0[4], acc1[4];                                                                     \
    for (int j = 0; j < 4; j++) acc0[j] = acc1[j] = _mm256_setzero_ps();                         \
    int64_t i = 0;                                                                               \
    for (; i + 2 <= nb; i += 2) {                                                                \
      const __m256i w0 = _mm256_loadu_si256((const __m256i *)a[i].qs);                          \
      const __m256i w1 = _mm256_loadu_si256((const __m256i *)a[i + 1].qs);                      \
      const __m256i u0 = _mm256_sign_epi8(w0, w0), u1 = _mm256_sign_epi8(w1, w1);               \
      for (int j = 0; j < 4; j++) {                                                              \
        const __m256i p0 =                                                                       \
            DOT(u0, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b[j][i].qs), w0));      \
        const __m256i p1 =                                                                       \
            DOT(u1, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b[j][i + 1].qs), w1));  \
        const __m128 d = scale_pair(a[i].d, a[i + 1].d, b[j][i].d, b[j][i + 1].d);              \
        acc0[j] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(p0), acc0[j]);    \
        acc1[j] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d)),                     \
                                  _mm256_cvtepi32_ps(p1), acc1[j]);                              \
      }                                                                                          \
    }                                                                                            \
    for (; i < nb; i++) {                                                                        \
      const __m256i wv = _mm256_loadu_si256((const __m256i *)a[i].qs);                          \
      const __m256i u = _mm256_sign_epi8(wv, wv);                                                \
      for (int j = 0; j < 4; j++) {                                                              \
        const __m256i p =                                                                        \
            DOT(u, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b[j][i].qs), wv));       \
        acc0[j] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[j][i].d)),                  \
                                  _mm256_cvtepi32_ps(p), acc0[j]);                               \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < 4; j++) y[j * ldy] = hsum_ps(_mm256_add_ps(acc0[j], acc1[j]));           \
  }

DEFINE_TILE4_Q8_0(tile4_q8_0_q8_0, TARGET, dot_u8_s8)
DEFINE_TILE4_Q8_0(tile4_q8_0_q8_0_vnni, TARGET_VNNI, dot_u8_s8_vnni)

dq_tile4_fn dq_avx2_tile4_kernel(uint32_t type, bool vnni) {
  switch (type) {
    case DQ_TYPE_Q4_1: return vnni ? tile4_q4_1_q8_1_vnni : tile4_q4_1_q8_1;
    case DQ_TYPE_Q8_0: return vnni ? tile4_q8_0_q8_0_vnni : tile4_q8_0_q8_0;
    default: return NULL;
  }
}

#else  // not x86-64, or DQ_SCALAR_ONLY: no SIMD twins, the dispatcher uses the references

dq_dot_fn dq_avx2_dot_kernel(uint32_t type) { (void)type; return NULL; }
dq_dot2_fn dq_avx2_dot2_kernel(uint32_t type) { (void)type; return NULL; }
dq_tile4_fn dq_avx2_tile4_kernel(uint32_t type, bool vnni) { (void)type; (void)vnni; return NULL; }
dq_quant_fn dq_avx2_quant_kernel(uint32_t type) { (void)type; return NULL; }

dq_dequant_fn dq_avx2_dequant_kernel(uint32_t type) { (void)type; return NULL; }

#endif
