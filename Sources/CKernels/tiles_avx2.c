// AVX2 tiles for batched products (prefill, training's frozen products, batched decode): one
// weight row against four activation rows, for Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (Q4_1 and
// Q8_0 have theirs in quants_avx2.c). Each weight block is unpacked once - nibbles, fifth bits,
// k-quant scales - and used for four tokens. Per token the arithmetic is exactly the one-row dot
// kernel's in quants_avx2.c: the same exact integer sums per 32-bit lane, the same fp32
// accumulators in the same order, so a batch gives the bits of one token at a time (tested).
// The integer dot is a parameter: maddubs+madd, or AVX-VNNI's dpbusd (exact in both).
#pragma STDC FP_CONTRACT OFF
#include "tiles.h"

#include "dq_simd.h"
#if DQ_X86_SIMD

TILE_AVX2 static inline __m256i unpack_nibbles(const uint8_t *qs) {
  const __m128i b = _mm_loadu_si128((const __m128i *)qs);
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0F));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F));
  return _mm256_set_m128i(hi, lo);
}

TILE_AVX2 static inline __m256i bits_to_bytes(uint32_t qh) {
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                         0x0101010101010101LL, 0x0000000000000000LL);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
  const __m256i mask = _mm256_set1_epi64x((long long)0x7FBFDFEFF7FBFDFEULL);
  v = _mm256_or_si256(v, mask);
  return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

TILE_AVX2 static inline __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

TILE_AVX2_VNNI static inline __m256i dot_u8_s8_vnni(__m256i u, __m256i s) {
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
}

#define LOAD_X(T)                                                                                \
  const T *b[4];                                                                               \
  for (int j = 0; j < 4; j++) b[j] = (const T *)((const char *)x + j * x_stride)

// ---- 32-element blocks against q8_0: q4_0 (q - 8) and q5_0 (q - 16) ----------------------------
// dot_s8_s8(q, y) = dot_u8_s8(|q|, sign(y, q)); |q| is taken once per weight block.
TILE_AVX2 static inline __m256i codes_q4_0(const block_q4_0 *a) {
  return _mm256_sub_epi8(unpack_nibbles(a->qs), _mm256_set1_epi8(8));
}
TILE_AVX2 static inline __m256i codes_q5_0(const block_q5_0 *a) {
  const __m256i hi = _mm256_andnot_si256(bits_to_bytes(dq_load_u32le(a->qh)), _mm256_set1_epi8((char)0xF0));
  return _mm256_or_si256(unpack_nibbles(a->qs), hi);
}

#define DEFINE_TILE4_SIGNED(NAME, ATTR, BLOCK, CODES, DOT)                                        \
  ATTR static void NAME(int64_t n, const void *w, const void *x, size_t x_stride, float *y,      \
                        int64_t ldy) {                                                          \
    const BLOCK *a = w;                                                                          \
    LOAD_X(block_q8_0);                                                                          \
    __m256 acc[4];                                                                               \
    for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();                                    \
    for (int64_t i = 0; i < n / QK8_0; i++) {                                                    \
      const __m256i q = CODES(&a[i]);                                                            \
      const __m256i u = _mm256_sign_epi8(q, q);                                                  \
      const float dw = tile_h2f(a[i].d);                                                         \
      for (int j = 0; j < 4; j++) {                                                              \
        const __m256i p = DOT(u, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b[j][i].qs), q)); \
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * tile_h2f(b[j][i].d)), _mm256_cvtepi32_ps(p), acc[j]); \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < 4; j++) y[j * ldy] = tile_hsum_ps(acc[j]);                               \
  }

DEFINE_TILE4_SIGNED(tile4_q4_0, TILE_AVX2, block_q4_0, codes_q4_0, dot_u8_s8)
DEFINE_TILE4_SIGNED(tile4_q4_0_vnni, TILE_AVX2_VNNI, block_q4_0, codes_q4_0, dot_u8_s8_vnni)
DEFINE_TILE4_SIGNED(tile4_q5_0, TILE_AVX2, block_q5_0, codes_q5_0, dot_u8_s8)
DEFINE_TILE4_SIGNED(tile4_q5_0_vnni, TILE_AVX2_VNNI, block_q5_0, codes_q5_0, dot_u8_s8_vnni)

// ---- q5_1 against q8_1: sum d dx (q.y) + m s, as dot_q5_1_q8_1 ------------------------------------
#define DEFINE_TILE4_Q5_1(NAME, ATTR, DOT)                                                        \
  ATTR static void NAME(int64_t n, const void *w, const void *x, size_t x_stride, float *y,      \
                        int64_t ldy) {                                                          \
    const block_q5_1 *a = w;                                                                     \
    LOAD_X(block_q8_1);                                                                          \
    __m256 acc[4];                                                                               \
    __m128 accm[4];                                                                              \
    for (int j = 0; j < 4; j++) {                                                                \
      acc[j] = _mm256_setzero_ps();                                                              \
      accm[j] = _mm_setzero_ps();                                                                \
    }                                                                                            \
    for (int64_t i = 0; i < n / QK8_1; i++) {                                                    \
      uint32_t u;                                                                                \
      memcpy(&u, &a[i].d, 4);                                                                    \
      const __m128 fw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));                                 \
      const __m256i hi = _mm256_and_si256(bits_to_bytes(dq_load_u32le(a[i].qh)), _mm256_set1_epi8(0x10)); \
      const __m256i q = _mm256_or_si256(unpack_nibbles(a[i].qs), hi);                            \
      for (int j = 0; j < 4; j++) {                                                              \
        uint32_t v;                                                                              \
        memcpy(&v, &b[j][i].d, 4);                                                               \
        const __m128 sc = _mm_mul_ps(fw, _mm_cvtph_ps(_mm_cvtsi32_si128((int)v)));               \
        const __m256i p = DOT(q, _mm256_loadu_si256((const __m256i *)b[j][i].qs));               \
        acc[j] = _mm256_fmadd_ps(_mm256_broadcastss_ps(sc), _mm256_cvtepi32_ps(p), acc[j]);      \
        accm[j] = _mm_add_ps(accm[j], sc);                                                       \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < 4; j++)                                                                  \
      y[j * ldy] = tile_hsum_ps(acc[j]) + _mm_cvtss_f32(_mm_shuffle_ps(accm[j], accm[j], 1));    \
  }

DEFINE_TILE4_Q5_1(tile4_q5_1, TILE_AVX2, dot_u8_s8)
DEFINE_TILE4_Q5_1(tile4_q5_1_vnni, TILE_AVX2_VNNI, dot_u8_s8_vnni)

// ---- k-quants against q8_K ------------------------------------------------------------------
// Per token: s += dx d hsum(sum_j sc_j q.y) - dx dmin hsum(mins . bsums), as dot_q4_K_q8_K.
// The sub-block codes (4 or 5 bits) of the 4 pairs of sub-blocks are built once per row block.
TILE_AVX2 static inline void k_tile_finish(const block_q8_K *const b[4], int64_t i, float dw,
                                           float dmin, const int32_t mn[8], const __m256i sumi[4],
                                           float s[4]) {
  const __m256i mnv = _mm256_loadu_si256((const __m256i *)mn);
  for (int j = 0; j < 4; j++) {
    const __m256i bs = _mm256_loadu_si256((const __m256i *)b[j][i].bsums);
    const __m256i summ = _mm256_mullo_epi32(_mm256_madd_epi16(bs, _mm256_set1_epi16(1)), mnv);
    s[j] += b[j][i].d * dw * tile_hsum_ps(_mm256_cvtepi32_ps(sumi[j])) -
            b[j][i].d * dmin * tile_hsum_ps(_mm256_cvtepi32_ps(summ));
  }
}

TILE_AVX2 static void tile4_q4_K(int64_t n, const void *w, const void *x, size_t x_stride, float *y,
                                 int64_t ldy) {
  const block_q4_K *a = w;
  LOAD_X(block_q8_K);
  float s[4] = {0, 0, 0, 0};
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t sc[8], mn[8];
    tile_k4_scales(a[i].scales, sc, mn);
    __m256i sumi[4];
    for (int j = 0; j < 4; j++) sumi[j] = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * k));
      const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      const __m256i s0 = _mm256_set1_epi16((short)sc[2 * k]), s1 = _mm256_set1_epi16((short)sc[2 * k + 1]);
      for (int j = 0; j < 4; j++) {
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b[j][i].qs + 64 * k));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b[j][i].qs + 64 * k + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
        sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p0, p1));
      }
    }
    k_tile_finish(b, i, tile_h2f(a[i].d), tile_h2f(a[i].dmin), mn, sumi, s);
  }
  for (int j = 0; j < 4; j++) y[j * ldy] = s[j];
}

TILE_AVX2 static void tile4_q5_K(int64_t n, const void *w, const void *x, size_t x_stride, float *y,
                                 int64_t ldy) {
  const block_q5_K *a = w;
  LOAD_X(block_q8_K);
  float s[4] = {0, 0, 0, 0};
  const __m256i m4 = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(0x10);
  for (int64_t i = 0; i < n / QK_K; i++) {
    int32_t sc[8], mn[8];
    tile_k4_scales(a[i].scales, sc, mn);
    const __m256i qh = _mm256_loadu_si256((const __m256i *)a[i].qh);
    __m256i sumi[4];
    for (int j = 0; j < 4; j++) sumi[j] = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * k));
      const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k), 4), bit);
      const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k + 1), 4), bit);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
      const __m256i s0 = _mm256_set1_epi16((short)sc[2 * k]), s1 = _mm256_set1_epi16((short)sc[2 * k + 1]);
      for (int j = 0; j < 4; j++) {
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b[j][i].qs + 64 * k));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b[j][i].qs + 64 * k + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
        sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p0, p1));
      }
    }
    k_tile_finish(b, i, tile_h2f(a[i].d), tile_h2f(a[i].dmin), mn, sumi, s);
  }
  for (int j = 0; j < 4; j++) y[j * ldy] = s[j];
}

// q6_K as dot_q6_K_q8_K: codes 0..63, the -32 offset taken as 32 * sum_k scales[k] bsums[k].
TILE_AVX2 static void tile4_q6_K(int64_t n, const void *w, const void *x, size_t x_stride, float *y,
                                 int64_t ldy) {
  const block_q6_K *a = w;
  LOAD_X(block_q8_K);
  float s[4] = {0, 0, 0, 0};
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  for (int64_t i = 0; i < n / QK_K; i++) {
    __m256i sumi[4];
    for (int j = 0; j < 4; j++) sumi[j] = _mm256_setzero_si256();
    for (int half = 0; half < 2; half++) {
      const uint8_t *ql = a[i].ql + 64 * half, *qhp = a[i].qh + 32 * half;
      const int8_t *scp = a[i].scales + 8 * half;
      const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
      const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
      const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
      __m256i q[4], scv[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
      for (int k = 0; k < 4; k++)
        scv[k] = _mm256_set_m128i(_mm_set1_epi16(scp[2 * k + 1]), _mm_set1_epi16(scp[2 * k]));
      for (int j = 0; j < 4; j++) {
        const int8_t *yq = b[j][i].qs + 128 * half;
        for (int k = 0; k < 4; k++) {
          const __m256i p16 = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(yq + 32 * k)));
          sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p16, scv[k]));
        }
      }
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
    const float dw = tile_h2f(a[i].d);
    for (int j = 0; j < 4; j++) {
      const __m256i bs = _mm256_loadu_si256((const __m256i *)b[j][i].bsums);
      const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
      s[j] += b[j][i].d * dw * tile_hsum_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[j], off)));
    }
  }
  for (int j = 0; j < 4; j++) y[j * ldy] = s[j];
}

// c + the u8 x s8 products of u and s summed by 4 into int32 lanes.
TILE_AVX2 static inline __m256i dotacc(__m256i c, __m256i u, __m256i s) {
  return _mm256_add_epi32(c, dot_u8_s8(u, s));
}
TILE_AVX2_VNNI static inline __m256i dotacc_vnni(__m256i c, __m256i u, __m256i s) {
  return _mm256_dpbusd_avx_epi32(c, u, s);
}

DEFINE_TILE_ROWS(rows2_q4_0, TILE_AVX2, block_q4_0, tile_ucodes_q4_0, 8, 2, dotacc)
DEFINE_TILE_ROWS(rows2_q4_0_vnni, TILE_AVX2_VNNI, block_q4_0, tile_ucodes_q4_0, 8, 2, dotacc_vnni)
DEFINE_TILE_ROWS(rows2_q5_0, TILE_AVX2, block_q5_0, tile_ucodes_q5_0, 16, 2, dotacc)
DEFINE_TILE_ROWS(rows2_q5_0_vnni, TILE_AVX2_VNNI, block_q5_0, tile_ucodes_q5_0, 16, 2, dotacc_vnni)

dq_tile_rows_fn dq_avx2_tile_rows_kernel(uint32_t type, bool vnni, int *rows) {
  *rows = 2;
  switch (type) {
    case DQ_TYPE_Q4_0: return vnni ? rows2_q4_0_vnni : rows2_q4_0;
    case DQ_TYPE_Q5_0: return vnni ? rows2_q5_0_vnni : rows2_q5_0;
    default: return NULL;
  }
}

dq_tile4_fn dq_avx2_tile4_more(uint32_t type, bool vnni) {
  switch (type) {
    case DQ_TYPE_Q4_0: return vnni ? tile4_q4_0_vnni : tile4_q4_0;
    case DQ_TYPE_Q5_0: return vnni ? tile4_q5_0_vnni : tile4_q5_0;
    case DQ_TYPE_Q5_1: return vnni ? tile4_q5_1_vnni : tile4_q5_1;
    case DQ_TYPE_Q4_K: return tile4_q4_K;
    case DQ_TYPE_Q5_K: return tile4_q5_K;
    case DQ_TYPE_Q6_K: return tile4_q6_K;
    default: return NULL;
  }
}

#else

dq_tile4_fn dq_avx2_tile4_more(uint32_t type, bool vnni) { (void)type; (void)vnni; return NULL; }
dq_tile_rows_fn dq_avx2_tile_rows_kernel(uint32_t type, bool vnni, int *rows) {
  (void)type; (void)vnni; *rows = 0; return NULL;
}

#endif
