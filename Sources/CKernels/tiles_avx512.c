// AVX-512 tiles for the k-quants (Q4_K, Q5_K, Q6_K): one weight row against four activation rows,
// 64 codes per instruction. Two 32-code sub-block chunks that the AVX2 kernels handle in two
// 256-bit halves sit side by side in one 512-bit register, and the halves' int32 lanes are added
// at the end: the same exact integer per 256-bit lane as dot_q*_K_q8_K, so the fp32 tail (the
// shared tile_hsum_ps and scale products) and therefore every bit of the result is the same.
// With AVX512-VNNI, vpdpwssd folds the scale multiply and the accumulate into one instruction.
#pragma STDC FP_CONTRACT OFF
#include "tiles.h"

#include "dq_simd.h"
#if DQ_X86_SIMD

#define TILE_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define TILE_512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

// acc + sum of the int16 pairs of p times the int16 pairs of s, as int32.
TILE_512 static inline __m512i madd_add(__m512i acc, __m512i p, __m512i s) {
  return _mm512_add_epi32(acc, _mm512_madd_epi16(p, s));
}
TILE_512_VNNI static inline __m512i madd_add_vnni(__m512i acc, __m512i p, __m512i s) {
  return _mm512_dpwssd_epi32(acc, p, s);
}

TILE_512 static inline __m256i fold(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

TILE_512 static inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

#define LOAD_X(T)                                                                                \
  const T *b[4];                                                                               \
  for (int j = 0; j < 4; j++) b[j] = (const T *)((const char *)x + j * x_stride)

// q4_K (FIFTH = 0) and q5_K (FIFTH = 1): chunk k holds sub-blocks 2k (low nibbles, activations
// 64k..64k+32) and 2k+1 (high nibbles, the next 32) - one 64-byte activation load.
#define DEFINE_TILE4_K4(NAME, ATTR, BLOCK, FIFTH, MADD_ADD)                                       \
  ATTR static void NAME(int64_t n, const void *w, const void *x, size_t x_stride, float *y,      \
                        int64_t ldy) {                                                          \
    const BLOCK *a = w;                                                                          \
    LOAD_X(block_q8_K);                                                                          \
    float s[4] = {0, 0, 0, 0};                                                                   \
    const __m256i m4 = _mm256_set1_epi8(0x0F);                                                   \
    for (int64_t i = 0; i < n / QK_K; i++) {                                                     \
      int32_t sc[8], mn[8];                                                                      \
      tile_k4_scales(a[i].scales, sc, mn);                                                       \
      __m512i acc[4];                                                                            \
      for (int j = 0; j < 4; j++) acc[j] = _mm512_setzero_si512();                               \
      for (int k = 0; k < 4; k++) {                                                              \
        const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * k));              \
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4); \
        if (FIFTH) {                                                                             \
          const __m256i qh = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)(const void *)&a[i])->qh); \
          const __m256i bit = _mm256_set1_epi8(0x10);                                            \
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k), 4), bit)); \
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k + 1), 4), bit)); \
        }                                                                                        \
        const __m512i wq = join(lo, hi);                                                         \
        const __m512i sv = join(_mm256_set1_epi16((short)sc[2 * k]), _mm256_set1_epi16((short)sc[2 * k + 1])); \
        for (int j = 0; j < 4; j++) {                                                            \
          const __m512i yv = _mm512_loadu_si512((const void *)(b[j][i].qs + 64 * k));            \
          acc[j] = MADD_ADD(acc[j], _mm512_maddubs_epi16(wq, yv), sv);                           \
        }                                                                                        \
      }                                                                                          \
      const __m256i mnv = _mm256_loadu_si256((const __m256i *)mn);                               \
      const float dw = tile_h2f(a[i].d), dmin = tile_h2f(a[i].dmin);                             \
      for (int j = 0; j < 4; j++) {                                                              \
        const __m256i bs = _mm256_loadu_si256((const __m256i *)b[j][i].bsums);                   \
        const __m256i summ = _mm256_mullo_epi32(_mm256_madd_epi16(bs, _mm256_set1_epi16(1)), mnv); \
        s[j] += b[j][i].d * dw * tile_hsum_ps(_mm256_cvtepi32_ps(fold(acc[j]))) -               \
                b[j][i].d * dmin * tile_hsum_ps(_mm256_cvtepi32_ps(summ));                       \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < 4; j++) y[j * ldy] = s[j];                                               \
  }

DEFINE_TILE4_K4(tile4_q4_K_512, TILE_512, block_q4_K, 0, madd_add)
DEFINE_TILE4_K4(tile4_q4_K_512_vnni, TILE_512_VNNI, block_q4_K, 0, madd_add_vnni)
DEFINE_TILE4_K4(tile4_q5_K_512, TILE_512, block_q5_K, 1, madd_add)
DEFINE_TILE4_K4(tile4_q5_K_512_vnni, TILE_512_VNNI, block_q5_K, 1, madd_add_vnni)

// q6_K: per half of the super-block, codes q[0..3] (32 each, activations 32k..32k+32) paired as
// (q0, q1) and (q2, q3); each 128-bit lane of the scale vector carries one 16-code sub-block's scale.
#define DEFINE_TILE4_Q6_K(NAME, ATTR, MADD_ADD)                                                   \
  ATTR static void NAME(int64_t n, const void *w, const void *x, size_t x_stride, float *y,      \
                        int64_t ldy) {                                                          \
    const block_q6_K *a = w;                                                                     \
    LOAD_X(block_q8_K);                                                                          \
    float s[4] = {0, 0, 0, 0};                                                                   \
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);                      \
    for (int64_t i = 0; i < n / QK_K; i++) {                                                     \
      __m512i acc[4];                                                                            \
      for (int j = 0; j < 4; j++) acc[j] = _mm512_setzero_si512();                               \
      /* 16 scales as int16, each spread over 4 int32 lanes' worth (8 int16) of its lane */      \
      const __m512i sc16 = _mm512_cvtepi8_epi16(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a[i].scales))); \
      for (int half = 0; half < 2; half++) {                                                     \
        const uint8_t *ql = a[i].ql + 64 * half, *qhp = a[i].qh + 32 * half;                     \
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);                              \
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));                      \
        const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);                             \
        const __m512i L = join(l0, l1), H = join(qh, _mm256_srli_epi16(qh, 2));                  \
        /* (q0, q1) and (q2, q3), exactly as the AVX2 kernel builds them */                      \
        const __m512i q01 = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_slli_epi16(_mm512_and_si512(H, m2), 4)); \
        const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),       \
                                            _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H, 4), m2), 4)); \
        /* scales 8h..8h+3 for (q0, q1), 8h+4..8h+7 for (q2, q3), one per 128-bit lane */        \
        const __m512i idx01 = _mm512_add_epi16(_mm512_set1_epi16((short)(8 * half)),             \
                                               _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, \
                                                                1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)); \
        const __m512i sv01 = _mm512_permutexvar_epi16(idx01, sc16);                              \
        const __m512i sv23 = _mm512_permutexvar_epi16(_mm512_add_epi16(idx01, _mm512_set1_epi16(4)), sc16); \
        for (int j = 0; j < 4; j++) {                                                            \
          const int8_t *yq = b[j][i].qs + 128 * half;                                            \
          acc[j] = MADD_ADD(acc[j], _mm512_maddubs_epi16(q01, _mm512_loadu_si512((const void *)yq)), sv01); \
          acc[j] = MADD_ADD(acc[j], _mm512_maddubs_epi16(q23, _mm512_loadu_si512((const void *)(yq + 64))), sv23); \
        }                                                                                        \
      }                                                                                          \
      const __m256i sc16a = _mm512_castsi512_si256(sc16);                                        \
      const float dw = tile_h2f(a[i].d);                                                         \
      for (int j = 0; j < 4; j++) {                                                              \
        const __m256i bs = _mm256_loadu_si256((const __m256i *)b[j][i].bsums);                   \
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16a), 5);                  \
        s[j] += b[j][i].d * dw * tile_hsum_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(fold(acc[j]), off))); \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < 4; j++) y[j * ldy] = s[j];                                               \
  }

DEFINE_TILE4_Q6_K(tile4_q6_K_512, TILE_512, madd_add)
DEFINE_TILE4_Q6_K(tile4_q6_K_512_vnni, TILE_512_VNNI, madd_add_vnni)

// ---- VNNI k-quant tiles that keep fp32 sums across super-blocks --------------------------------
// The tiles above finish every super-block with two horizontal sums per token (the one-row dot's
// order); on a 2048-wide row that tail costs more than the products. These keep, per token, one
// 16-lane fp32 accumulator: acc += dx d (sub-block sums), acc -= dx dmin (min sums) lane-wise,
// one reduction at the end. Same exact integers per super-block, another fp32 summation order:
// within the summation tolerance of the scalar reference (TileTests), not the dot's bits.
// T tokens per pass (4 for dq_tile4_fn, 8 as a one-row dq_tile_rows_fn) against one weight row;
// each token's arithmetic does not depend on T.

// acc + the int16 pairs of p times those of s, as int32, kept as one vpdpwssd: left to itself the
// compiler splits it into vpmaddwd + vpaddd (three instructions where two do).
TILE_512_VNNI static inline __m512i dpwssd_kept(__m512i acc, __m512i p, __m512i s) {
  __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(p), "v"(s));
  return acc;
}

// Scales and mins of a q4_K/q5_K super-block, unpacked on 32-bit words: sc[0..8) then mn[0..8).
static inline void k4_unpack_scales(const uint8_t *q, uint8_t out[16]) {
  uint32_t u[3];
  memcpy(u, q, 12);
  const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, hi2 = 0x03030303u;
  const uint32_t sc0 = u[0] & lo6;                                   // sc 0..3
  const uint32_t mn0 = u[1] & lo6;                                   // mn 0..3
  const uint32_t sc1 = (u[2] & lo4) | (((u[0] >> 6) & hi2) << 4);    // sc 4..7
  const uint32_t mn1 = ((u[2] >> 4) & lo4) | (((u[1] >> 6) & hi2) << 4);  // mn 4..7
  memcpy(out, &sc0, 4);
  memcpy(out + 4, &sc1, 4);
  memcpy(out + 8, &mn0, 4);
  memcpy(out + 12, &mn1, 4);
}

#define DEFINE_TILE_K4_F(NAME, BLOCK, FIFTH, T)                                                  \
  TILE_512_VNNI static void NAME(int64_t n, const void *w, const void *x, size_t x_stride,       \
                                 float *y, int64_t ldy) {                                       \
    const BLOCK *a = w;                                                                          \
    const block_q8_K *b[T];                                                                      \
    for (int j = 0; j < T; j++) b[j] = (const block_q8_K *)((const char *)x + j * x_stride);    \
    __m512 fs[T];                                                                                \
    for (int j = 0; j < T; j++) fs[j] = _mm512_setzero_ps();                                     \
    const __m256i m4 = _mm256_set1_epi8(0x0F);                                                   \
    /* lanes 0..15 take scale 2k, lanes 16..31 scale 2k+1 */                                     \
    const __m512i half_idx = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1); \
    for (int64_t i = 0; i < n / QK_K; i++) {                                                     \
      uint8_t sm[16];                                                                            \
      k4_unpack_scales(a[i].scales, sm);                                                         \
      const __m128i smv = _mm_loadu_si128((const __m128i *)sm);                                  \
      const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(smv));                    \
      /* mins as int16 pairs (m0, m0, m1, m1, ...): one madd with the 16 bsums */                 \
      const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(smv, smv));                    \
      __m512i acc[T];                                                                            \
      for (int j = 0; j < T; j++) acc[j] = _mm512_setzero_si512();                               \
      for (int k = 0; k < 4; k++) {                                                              \
        const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * k));              \
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4); \
        if (FIFTH) {                                                                             \
          const __m256i qh = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)(const void *)&a[i])->qh); \
          const __m256i bit = _mm256_set1_epi8(0x10);                                            \
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k), 4), bit)); \
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * k + 1), 4), bit)); \
        }                                                                                        \
        const __m512i wq = join(lo, hi);                                                         \
        const __m512i sv = _mm512_permutexvar_epi16(_mm512_add_epi16(half_idx, _mm512_set1_epi16((short)(2 * k))), sc16); \
        for (int j = 0; j < T; j++)                                                              \
          acc[j] = dpwssd_kept(acc[j], _mm512_maddubs_epi16(wq, _mm512_loadu_si512((const void *)(b[j][i].qs + 64 * k))), sv); \
      }                                                                                          \
      const float dw = tile_h2f(a[i].d), dmin = tile_h2f(a[i].dmin);                             \
      for (int j = 0; j < T; j++) {                                                              \
        const __m256i bs = _mm256_loadu_si256((const __m256i *)b[j][i].bsums);                   \
        const __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mn16));                     \
        fs[j] = _mm512_fmadd_ps(_mm512_set1_ps(b[j][i].d * dw), _mm512_cvtepi32_ps(acc[j]), fs[j]); \
        fs[j] = _mm512_fmadd_ps(_mm512_set1_ps(-(b[j][i].d * dmin)), _mm512_zextps256_ps512(mins), fs[j]); \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < T; j++) y[j * ldy] = _mm512_reduce_add_ps(fs[j]);                        \
  }

#define DEFINE_TILE_Q6_K_F(NAME, T)                                                               \
  TILE_512_VNNI static void NAME(int64_t n, const void *w, const void *x, size_t x_stride,       \
                                 float *y, int64_t ldy) {                                       \
    const block_q6_K *a = w;                                                                     \
    const block_q8_K *b[T];                                                                      \
    for (int j = 0; j < T; j++) b[j] = (const block_q8_K *)((const char *)x + j * x_stride);    \
    __m512 fs[T];                                                                                \
    for (int j = 0; j < T; j++) fs[j] = _mm512_setzero_ps();                                     \
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);                      \
    const __m512i idx0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,        \
                                          1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);       \
    for (int64_t i = 0; i < n / QK_K; i++) {                                                     \
      __m512i acc[T];                                                                            \
      for (int j = 0; j < T; j++) acc[j] = _mm512_setzero_si512();                               \
      const __m512i sc16 = _mm512_cvtepi8_epi16(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a[i].scales))); \
      for (int half = 0; half < 2; half++) {                                                     \
        const uint8_t *ql = a[i].ql + 64 * half, *qhp = a[i].qh + 32 * half;                     \
        const __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);                             \
        const __m512i L = _mm512_loadu_si512((const void *)ql), H = join(qh, _mm256_srli_epi16(qh, 2)); \
        const __m512i q01 = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_slli_epi16(_mm512_and_si512(H, m2), 4)); \
        const __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),       \
                                            _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H, 4), m2), 4)); \
        const __m512i i01 = _mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * half)));        \
        const __m512i sv01 = _mm512_permutexvar_epi16(i01, sc16);                                \
        const __m512i sv23 = _mm512_permutexvar_epi16(_mm512_add_epi16(i01, _mm512_set1_epi16(4)), sc16); \
        for (int j = 0; j < T; j++) {                                                            \
          const int8_t *yq = b[j][i].qs + 128 * half;                                            \
          acc[j] = dpwssd_kept(acc[j], _mm512_maddubs_epi16(q01, _mm512_loadu_si512((const void *)yq)), sv01); \
          acc[j] = dpwssd_kept(acc[j], _mm512_maddubs_epi16(q23, _mm512_loadu_si512((const void *)(yq + 64))), sv23); \
        }                                                                                        \
      }                                                                                          \
      /* codes are 0..63: take off 32 * sum scales . bsums */                                    \
      const __m256i sc16a = _mm512_castsi512_si256(sc16);                                        \
      const float dw = tile_h2f(a[i].d);                                                         \
      for (int j = 0; j < T; j++) {                                                              \
        const __m256i bs = _mm256_loadu_si256((const __m256i *)b[j][i].bsums);                   \
        const __m256 off = _mm256_cvtepi32_ps(_mm256_slli_epi32(_mm256_madd_epi16(bs, sc16a), 5)); \
        const float d = b[j][i].d * dw;                                                          \
        fs[j] = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(acc[j]), fs[j]);           \
        fs[j] = _mm512_fmadd_ps(_mm512_set1_ps(-d), _mm512_zextps256_ps512(off), fs[j]);          \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < T; j++) y[j * ldy] = _mm512_reduce_add_ps(fs[j]);                        \
  }

DEFINE_TILE_K4_F(tile4_q4_K_f, block_q4_K, 0, 4)
DEFINE_TILE_K4_F(tile4_q5_K_f, block_q5_K, 1, 4)
DEFINE_TILE_Q6_K_F(tile4_q6_K_f, 4)
DEFINE_TILE_K4_F(tile8_q4_K_f, block_q4_K, 0, 8)
DEFINE_TILE_K4_F(tile8_q5_K_f, block_q5_K, 1, 8)
DEFINE_TILE_Q6_K_F(tile8_q6_K_f, 8)

// One row x 8 tokens as a dq_tile_rows_fn (row_stride unused).
#define DEFINE_ROWS1(NAME, TILE)                                                                  \
  static void NAME(int64_t n, const void *w, size_t row_stride, const void *x, size_t x_stride,  \
                   float *y, int64_t ldy) {                                                     \
    (void)row_stride;                                                                            \
    TILE(n, w, x, x_stride, y, ldy);                                                             \
  }
DEFINE_ROWS1(rows1_q4_K_f, tile8_q4_K_f)
DEFINE_ROWS1(rows1_q5_K_f, tile8_q5_K_f)
DEFINE_ROWS1(rows1_q6_K_f, tile8_q6_K_f)

// Q4_0 / Q5_0, 4 rows x 8 tokens: the scheme of DEFINE_TILE_ROWS (tiles.h) with two tokens side
// by side in each 512-bit register (the row's codes in both halves), so one dpbusd, one convert
// and one FMA serve two tokens, and each row block's codes are unpacked once for 8 tokens; each
// half does exactly the 256-bit lane arithmetic of the one-row dot.
TILE_512 static inline __m256i ucodes512_q4_0(const void *blk) {
  return tile_unpack_nibbles(((const block_q4_0 *)blk)->qs);
}
TILE_512 static inline __m256i ucodes512_q5_0(const void *blk) {
  const block_q5_0 *a = blk;  // the fifth bits straight from a mask register
  const __m256i hi = _mm256_maskz_mov_epi8((__mmask32)dq_load_u32le(a->qh), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(tile_unpack_nibbles(a->qs), hi);
}

// q8_0 codes as unsigned u = q + 128 (the sign bit flipped); the offset 128 = (char)0x80 as dpbusd's
// unsigned operand. The one-row q8_0 dot sums even and odd blocks in two accumulators, this tile
// in one: not its bits (dq_avx512_tiles_exact), within the summation tolerance.
TILE_512 static inline __m256i ucodes512_q8_0(const void *blk) {
  return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)((const block_q8_0 *)blk)->qs),
                          _mm256_set1_epi8((char)0x80));
}

#define TOK 8
#define DEFINE_TILE_ROWS_512(NAME, BLOCK, UCODES, OFF, R)                                         \
  TILE_512_VNNI static void NAME(int64_t n, const void *w, size_t row_stride, const void *x,     \
                                 size_t x_stride, float *y, int64_t ldy) {                      \
    const BLOCK *a[R];                                                                           \
    for (int r = 0; r < R; r++) a[r] = (const BLOCK *)((const char *)w + r * row_stride);       \
    const block_q8_0 *b[TOK];                                                                    \
    for (int j = 0; j < TOK; j++) b[j] = (const block_q8_0 *)((const char *)x + j * x_stride);  \
    __m512 acc[R][TOK / 2];                                                                      \
    for (int r = 0; r < R; r++)                                                                  \
      for (int h = 0; h < TOK / 2; h++) acc[r][h] = _mm512_setzero_ps();                         \
    const __m512i off = _mm512_set1_epi8(OFF), zero = _mm512_setzero_si512();                    \
    __m512i idx[TOK / 2];                                                                        \
    for (int h = 0; h < TOK / 2; h++)                                                            \
      idx[h] = _mm512_inserti64x4(_mm512_set1_epi32(2 * h), _mm256_set1_epi32(2 * h + 1), 1);   \
    for (int64_t i = 0; i < n / QK8_0; i++) {                                                    \
      uint16_t hx[TOK];                                                                          \
      for (int j = 0; j < TOK; j++) hx[j] = b[j][i].d;                                           \
      const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hx));                   \
      __m512i yv[TOK / 2], c[TOK / 2];                                                           \
      for (int h = 0; h < TOK / 2; h++) {                                                        \
        yv[h] = join(_mm256_loadu_si256((const __m256i *)b[2 * h][i].qs),                        \
                     _mm256_loadu_si256((const __m256i *)b[2 * h + 1][i].qs));                   \
        c[h] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, off, yv[h]));                    \
      }                                                                                          \
      for (int r = 0; r < R; r++) {                                                              \
        const __m512i u = _mm512_broadcast_i64x4(UCODES(&a[r][i]));                              \
        const __m512 sc = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_set1_ps(tile_h2f(a[r][i].d)), dx)); \
        for (int h = 0; h < TOK / 2; h++)                                                        \
          acc[r][h] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx[h], sc),                         \
                                      _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c[h], u, yv[h])), acc[r][h]); \
      }                                                                                          \
    }                                                                                            \
    for (int r = 0; r < R; r++)                                                                  \
      for (int h = 0; h < TOK / 2; h++) {                                                        \
        y[(2 * h) * ldy + r] = tile_hsum_ps(_mm512_castps512_ps256(acc[r][h]));                  \
        y[(2 * h + 1) * ldy + r] = tile_hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r][h]), 1))); \
      }                                                                                          \
  }

DEFINE_TILE_ROWS_512(rows4_q4_0_vnni, block_q4_0, ucodes512_q4_0, 8, 4)
DEFINE_TILE_ROWS_512(rows4_q5_0_vnni, block_q5_0, ucodes512_q5_0, 16, 4)
DEFINE_TILE_ROWS_512(rows4_q8_0_vnni, block_q8_0, ucodes512_q8_0, (char)0x80, 4)

dq_tile_rows_fn dq_avx512_tile_rows_kernel(uint32_t type, int *rows, int *tokens) {
  *rows = 4;
  *tokens = TOK;
  switch (type) {
    case DQ_TYPE_Q4_0: return rows4_q4_0_vnni;
    case DQ_TYPE_Q5_0: return rows4_q5_0_vnni;
    case DQ_TYPE_Q8_0: return rows4_q8_0_vnni;
    default: break;
  }
  *rows = 1;
  *tokens = 8;
  switch (type) {
    case DQ_TYPE_Q4_K: return rows1_q4_K_f;
    case DQ_TYPE_Q5_K: return rows1_q5_K_f;
    case DQ_TYPE_Q6_K: return rows1_q6_K_f;
    default: return NULL;
  }
}

bool dq_avx512_tiles_exact(uint32_t type, bool vnni) {
  return !(vnni && (type == DQ_TYPE_Q4_K || type == DQ_TYPE_Q5_K || type == DQ_TYPE_Q6_K ||
                    type == DQ_TYPE_Q8_0));
}

dq_tile4_fn dq_avx512_tile4_kernel(uint32_t type, bool vnni) {
  switch (type) {
    case DQ_TYPE_Q4_K: return vnni ? tile4_q4_K_f : tile4_q4_K_512;
    case DQ_TYPE_Q5_K: return vnni ? tile4_q5_K_f : tile4_q5_K_512;
    case DQ_TYPE_Q6_K: return vnni ? tile4_q6_K_f : tile4_q6_K_512;
    default: return NULL;
  }
}

#else

bool dq_avx512_tiles_exact(uint32_t type, bool vnni) { (void)type; (void)vnni; return true; }
dq_tile4_fn dq_avx512_tile4_kernel(uint32_t type, bool vnni) { (void)type; (void)vnni; return NULL; }
dq_tile_rows_fn dq_avx512_tile_rows_kernel(uint32_t type, int *rows, int *tokens) {
  (void)type; *rows = *tokens = 0; return NULL;
}

#endif
