// AVX-512 tiles for the k-quants (Q4_K, Q5_K, Q6_K): one weight row against four activation rows,
// 64 codes per instruction. Two 32-code sub-block chunks that the AVX2 kernels handle in two
// 256-bit halves sit side by side in one 512-bit register, and the halves' int32 lanes are added
// at the end: the same exact integer per 256-bit lane as dot_q*_K_q8_K, so the fp32 tail (the
// shared tile_hsum_ps and scale products) and therefore every bit of the result is the same.
// With AVX512-VNNI, vpdpwssd folds the scale multiply and the accumulate into one instruction.
#pragma STDC FP_CONTRACT OFF
#include "tiles.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dq_simd.h"
#include "vnni.h"
#include "scratch.h"
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
          acc[j] = dq_dpwssd_kept(acc[j], _mm512_maddubs_epi16(wq, _mm512_loadu_si512((const void *)(b[j][i].qs + 64 * k))), sv); \
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
          acc[j] = dq_dpwssd_kept(acc[j], _mm512_maddubs_epi16(q01, _mm512_loadu_si512((const void *)yq)), sv01); \
          acc[j] = dq_dpwssd_kept(acc[j], _mm512_maddubs_epi16(q23, _mm512_loadu_si512((const void *)(yq + 64))), sv23); \
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

// ---- Q4_0 / Q5_0 / Q8_0 against many tokens: 16 rows repacked per pass -----------------------
// The 4x8 tile above converts and scales every dpbusd result (one per block, row and token pair)
// before it can add blocks up: four instructions of bookkeeping per product. Here the caller's
// 16 weight rows are first repacked, once for all tokens, into a per-thread scratch: per block,
// 8 vectors whose lane r holds 4 unsigned codes (u = q + off) of row r (vector k: codes 4k..4k+3)
// and the 16 row scales as fp32. A token's block is then 8 dpbusd against its 4-byte groups
// broadcast from memory, starting from -off * sum(y) (formed once per token and block), and one
// convert + one FMA with the 16 scales times the token's: every instruction serves 16 rows.
// Another fp32 summation order than the one-row dots (dq_avx512_tiles_exact is false), within
// the summation tolerance of the scalar reference (TileTests).
enum { PK_ROWS = 16, PK_TOK = 8, PK_BLOCK_BYTES = 8 * 64 + 64 };

// Per pool thread, grown to the widest matrix and largest batch it has seen, never shrunk:
// at 8192 columns, 147 KiB of packed Q4_0 rows (160 KiB of Q6_K), and for 512 tokens 1 MiB of
// per-block sums (as much of Q6_K's per-sub-block offsets). The weights themselves are never
// copied whole: 16 rows at a time.
static _Thread_local dq_scratch pk_pack;  // PK_BLOCK_BYTES per block of the 16 rows in hand
static _Thread_local dq_scratch pk_aux_scratch;  // per token and block: -off * sum(y) (int32), then dx (fp32); k-quants: kp_aux

static const int32_t pk_idx[6][16] = {
    {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},   // stage 1, codes 0..15
    {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31},  // stage 1, codes 16..31
    {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29},    // stage 2, even pairs
    {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31},  // stage 2, odd pairs
    {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30},   // stage 3, even dwords
    {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31},   // stage 3, odd dwords
};

// 16 rows' unsigned codes of one block (P[p]: rows 2p and 2p+1, 8 dwords each) transposed to
// V[k] (lane r: dword k of row r) in three rounds of two-source permutes.
TILE_512 static inline void pk_transpose(const __m512i P[8], __m512i V[8]) {
  __m512i I[6];
  for (int i = 0; i < 6; i++) I[i] = _mm512_loadu_si512((const void *)pk_idx[i]);
  __m512i Q[4][2], R[2][2][2];
  for (int q = 0; q < 4; q++)  // rows 4q..4q+3, dwords 4h..4h+3
    for (int h = 0; h < 2; h++) Q[q][h] = _mm512_permutex2var_epi32(P[2 * q], I[h], P[2 * q + 1]);
  for (int s = 0; s < 2; s++)  // rows 8s..8s+7, dwords 4h+2c, 4h+2c+1
    for (int h = 0; h < 2; h++)
      for (int c = 0; c < 2; c++) R[s][h][c] = _mm512_permutex2var_epi32(Q[2 * s][h], I[2 + c], Q[2 * s + 1][h]);
  for (int h = 0; h < 2; h++)
    for (int c = 0; c < 2; c++)
      for (int kk = 0; kk < 2; kk++)
        V[4 * h + 2 * c + kk] = _mm512_permutex2var_epi32(R[0][h][c], I[4 + kk], R[1][h][c]);
}

#define DEFINE_PACK16(NAME, BLOCK, UCODES)                                                        \
  TILE_512 static void NAME(int64_t nb, const void *w, size_t row_stride, uint8_t *pack) {      \
    const BLOCK *a[PK_ROWS];                                                                     \
    for (int r = 0; r < PK_ROWS; r++) a[r] = (const BLOCK *)((const char *)w + r * row_stride); \
    for (int64_t i = 0; i < nb; i++) {                                                           \
      __m512i P[8], V[8];                                                                        \
      for (int p = 0; p < 8; p++) P[p] = join(UCODES(&a[2 * p][i]), UCODES(&a[2 * p + 1][i]));   \
      pk_transpose(P, V);                                                                        \
      uint8_t *dst = pack + i * PK_BLOCK_BYTES;                                                  \
      for (int k = 0; k < 8; k++) _mm512_store_si512((void *)(dst + 64 * k), V[k]);             \
      uint16_t d[PK_ROWS];                                                                       \
      for (int r = 0; r < PK_ROWS; r++) d[r] = a[r][i].d;                                        \
      _mm512_store_ps((float *)(dst + 512), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d))); \
    }                                                                                            \
  }
DEFINE_PACK16(pack16_q4_0, block_q4_0, ucodes512_q4_0)

// 16 x 16 dwords transposed, N[c] lane r = M[r] lane c: 32- and 64-bit unpacks within 128-bit
// lanes, then two rounds of 128-bit lane shuffles.
TILE_512 static inline void pk_transpose16(const __m512i M[16], __m512i N[16]) {
  __m512i T[16], U[16];
  for (int i = 0; i < 8; i++) {
    T[2 * i] = _mm512_unpacklo_epi32(M[2 * i], M[2 * i + 1]);
    T[2 * i + 1] = _mm512_unpackhi_epi32(M[2 * i], M[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {  // U[4i + e] lane q: rows 4i..4i+3 at column 4q + e
    U[4 * i] = _mm512_unpacklo_epi64(T[4 * i], T[4 * i + 2]);
    U[4 * i + 1] = _mm512_unpackhi_epi64(T[4 * i], T[4 * i + 2]);
    U[4 * i + 2] = _mm512_unpacklo_epi64(T[4 * i + 1], T[4 * i + 3]);
    U[4 * i + 3] = _mm512_unpackhi_epi64(T[4 * i + 1], T[4 * i + 3]);
  }
  for (int e = 0; e < 4; e++) {
    const __m512i v0 = _mm512_shuffle_i32x4(U[e], U[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(U[e], U[4 + e], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(U[8 + e], U[12 + e], 0x44), v3 = _mm512_shuffle_i32x4(U[8 + e], U[12 + e], 0xEE);
    N[e] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    N[4 + e] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    N[8 + e] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    N[12 + e] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// The Q4_0 decode shadow's rows (DQ_TYPE_Q4_0_X16, q4_0_x16.c) packed straight into the layout
// pack16_q4_0 writes (the same bytes, so a prefill from the shadow gets the plain rows' bits):
// in a run of k blocks, chunk j of row r has block l's qs dword j in lane l, so one 16 x 16
// transpose per chunk gives every block's lane-per-row dword j (codes 4j.. in its low nibbles,
// 16+4j.. in its high), and one more the scales; a short last run reads its k lanes masked.
// About a quarter of pack16_q4_0's instructions per block.
TILE_512 static void pack16_q4_0_x16(int64_t nb, const void *w, size_t row_stride, uint8_t *pack) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int64_t g = 0; g < nb; g += 16) {
    const int k = nb - g < 16 ? (int)(nb - g) : 16;
    const __mmask64 mc = k == 16 ? ~(__mmask64)0 : ((__mmask64)1 << (4 * k)) - 1;
    const __mmask16 ms = (__mmask16)((1u << k) - 1);
    const char *run = (const char *)w + (size_t)g * sizeof(block_q4_0);
    uint8_t *dst = pack + (size_t)g * PK_BLOCK_BYTES;
    __m512i M[16], N[16];
    for (int j = 0; j < 4; j++) {
      for (int r = 0; r < PK_ROWS; r++) M[r] = _mm512_maskz_loadu_epi8(mc, run + r * row_stride + 2 * k + 4 * k * j);
      pk_transpose16(M, N);
      for (int l = 0; l < k; l++) {
        _mm512_store_si512((void *)(dst + (size_t)l * PK_BLOCK_BYTES + 64 * j), _mm512_and_si512(N[l], m4));
        _mm512_store_si512((void *)(dst + (size_t)l * PK_BLOCK_BYTES + 64 * (4 + j)),
                           _mm512_and_si512(_mm512_srli_epi16(N[l], 4), m4));
      }
    }
    for (int r = 0; r < PK_ROWS; r++)
      M[r] = _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(ms, run + r * row_stride)));
    pk_transpose16(M, N);
    for (int l = 0; l < k; l++) _mm512_store_si512((void *)(dst + (size_t)l * PK_BLOCK_BYTES + 512), N[l]);
  }
}
DEFINE_PACK16(pack16_q5_0, block_q5_0, ucodes512_q5_0)
DEFINE_PACK16(pack16_q8_0, block_q8_0, ucodes512_q8_0)

// Per token and block of q8_0 activations: -off * sum(y) and dx as fp32.
TILE_512_VNNI static void pk_aux(int64_t nb, const void *x, size_t x_stride, int64_t tokens,
                                 int off, uint8_t *aux) {
  const __m256i offv = _mm256_set1_epi8((char)off), zero = _mm256_setzero_si256();
  for (int64_t t = 0; t < tokens; t++) {
    const block_q8_0 *b = (const block_q8_0 *)((const char *)x + t * x_stride);
    int32_t *corr = (int32_t *)(aux + (size_t)t * nb * 8);
    float *dx = (float *)(corr + nb);
    for (int64_t i = 0; i < nb; i++) {
      // off as dpbusd's unsigned operand: 128 is (char)0x80, so u8 * s8 stays exact
      const __m256i s = _mm256_dpbusd_epi32(zero, offv, _mm256_loadu_si256((const __m256i *)b[i].qs));
      __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
      h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
      corr[i] = -_mm_cvtsi128_si32(h);
      dx[i] = tile_h2f(b[i].d);
    }
  }
}

// T tokens (x rows t0.., x_stride apart) against the 16 packed rows: y[j * ldy + r].
#define DEFINE_PK_KERNEL(NAME, T)                                                                 \
  TILE_512_VNNI static void NAME(int64_t nb, const uint8_t *pack, const void *x, size_t x_stride, \
                                 const uint8_t *aux, float *y, int64_t ldy) {                   \
    const block_q8_0 *b[T];                                                                      \
    const int32_t *corr[T];                                                                      \
    const float *dx[T];                                                                          \
    for (int j = 0; j < T; j++) {                                                                \
      b[j] = (const block_q8_0 *)((const char *)x + j * x_stride);                               \
      corr[j] = (const int32_t *)(aux + (size_t)j * nb * 8);                                     \
      dx[j] = (const float *)(corr[j] + nb);                                                     \
    }                                                                                            \
    __m512 fs[T];                                                                                \
    for (int j = 0; j < T; j++) fs[j] = _mm512_setzero_ps();                                     \
    for (int64_t i = 0; i < nb; i++) {                                                           \
      const uint8_t *src = pack + i * PK_BLOCK_BYTES;                                            \
      __m512i W[8];                                                                              \
      for (int k = 0; k < 8; k++) W[k] = _mm512_load_si512((const void *)(src + 64 * k));       \
      const __m512 dw = _mm512_load_ps((const float *)(src + 512));                              \
      for (int j = 0; j < T; j++) {                                                              \
        const int8_t *q = b[j][i].qs;                                                            \
        __m512i acc = _mm512_set1_epi32(corr[j][i]);                                             \
        for (int k = 0; k < 8; k++) {                                                            \
          int32_t g;                                                                             \
          memcpy(&g, q + 4 * k, 4);                                                              \
          acc = _mm512_dpbusd_epi32(acc, W[k], _mm512_set1_epi32(g));                            \
        }                                                                                        \
        fs[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(dw, _mm512_set1_ps(dx[j][i])), fs[j]); \
      }                                                                                          \
    }                                                                                            \
    for (int j = 0; j < T; j++) _mm512_storeu_ps(y + j * ldy, fs[j]);                           \
  }
DEFINE_PK_KERNEL(pk_tokens8, PK_TOK)
DEFINE_PK_KERNEL(pk_tokens1, 1)

// ---- the k-quants the same way -------------------------------------------------------------
// Per super-block of the 16 rows: for each 32-code group g, 8 code vectors as above and the
// group's scale per row as fp32 d * sc (two for Q6_K, whose 16-code sub-blocks each have one).
// Q4_K/Q5_K then add 4 vectors of int16 pairs (min_g, min_g+2) per row, which one vpdpwssd
// each takes against the token's group sums (S_g, S_g+2), and dmin per row. A token's group:
// 8 dpbusd, its int32 sum (|sum| <= 31 * 128 * 32, exact in fp32) converted and multiplied into
// an fp32 super-block sum by one FMA (a vpmulld by the integer scale into an int32 sum, as the
// one-row dots do, was slower on Zen 4); the super-block sum times the token's d goes into the
// token's accumulator. Q6_K's codes are q + 32: each sub-block's dpbusd chain starts from
// -32 * its bsum, prepared once per token (kp_aux), so Q6_K needs no correction products at all
// (|sub-block sum| <= 65536). Per token and super-block that leaves, besides the 64 dpbusd,
// 8 FMA + 4 vpdpwssd (Q4_K/Q5_K) or 16 FMA (Q6_K) on the multiply pipes. Each token's operations
// do not depend on the token count of the call. Another fp32 summation order than the one-row
// dots, within the tolerance of the scalar reference (TileTests).
#define KP_GROUP_BYTES(SPLIT) (512 + 64 * (1 + (SPLIT)))
#define KP_SB_BYTES(SPLIT) (8 * KP_GROUP_BYTES(SPLIT) + ((SPLIT) ? 0 : 5 * 64))
// Per token and super-block, from kp_aux: Q6_K 16 int32 (-32 bsum_s), Q4_K/Q5_K 4 dwords of
// int16 pairs (S_g, S_g+2) for g = 0, 1, 4, 5, S_g the sum of group g's 32 activations
// (|S_g| <= 4096).
#define KP_AUX_BYTES(SPLIT) ((SPLIT) ? 64 : 16)

// The pack works on all 16 rows at once: each row's codes 64 at a time (two groups side by side
// in one register), and its scale bytes transposed with permutes, so the scales and mins are
// unpacked 16 rows per instruction.

// Two 32-code groups of row r as one 512-bit vector (group 2k low, 2k+1 high), for q4_K and
// q5_K; q6_K's half h gives groups 4h, 4h+1 (lo) and 4h+2, 4h+3 (hi).
TILE_512 static inline __m512i kcodes2_q4_K(const void *blk, int k) {
  const block_q4_K *a = blk;
  const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a->qs + 32 * k)));
  const __m512i by = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  return _mm512_and_si512(_mm512_srlv_epi16(q, by), _mm512_set1_epi8(0x0F));
}
TILE_512 static inline __m512i kcodes2_q5_K(const void *blk, int k) {
  const block_q5_K *a = blk;
  const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a->qs + 32 * k)));
  const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)a->qh));
  const __m512i by = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m512i byh = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * k)), _mm256_set1_epi16((short)(2 * k + 1)), 1);
  const __m512i lo = _mm512_and_si512(_mm512_srlv_epi16(q, by), _mm512_set1_epi8(0x0F));
  const __m512i bit = _mm512_and_si512(_mm512_slli_epi16(_mm512_srlv_epi16(qh, byh), 4), _mm512_set1_epi8(0x10));
  return _mm512_or_si512(lo, bit);
}
TILE_512 static inline void kcodes4_q6_K(const void *blk, int h, __m512i *lo, __m512i *hi) {
  const block_q6_K *a = blk;
  const __m512i l = _mm512_loadu_si512((const void *)(a->ql + 64 * h));
  const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(a->qh + 32 * h)));
  const __m512i b01 = _mm512_srlv_epi16(qh, _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1));
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
  *lo = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(b01, m2), 4));
  *hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(b01, 4), m2), 4));
}

// Rows 2p, 2p+1 of two groups (X[r]: group g low, g+1 high) into pk_transpose's input for each,
// transposed and stored at gd (group g) and gd + KP_GROUP_BYTES (group g+1).
TILE_512 static inline void kp_store2(const __m512i X[PK_ROWS], uint8_t *gd, size_t group_bytes) {
  __m512i P[8], Q[8], V[8];
  for (int p = 0; p < 8; p++) {
    P[p] = _mm512_shuffle_i64x2(X[2 * p], X[2 * p + 1], 0x44);
    Q[p] = _mm512_shuffle_i64x2(X[2 * p], X[2 * p + 1], 0xEE);
  }
  pk_transpose(P, V);
  for (int k = 0; k < 8; k++) _mm512_store_si512((void *)(gd + 64 * k), V[k]);
  pk_transpose(Q, V);
  for (int k = 0; k < 8; k++) _mm512_store_si512((void *)(gd + group_bytes + 64 * k), V[k]);
}

static const int32_t kp_idx4[4][16] = {
    {0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29},      // dwords 0, 1 of rows 0..7
    {2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31},    // dwords 2, 3
    {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},        // first dword of the pair
    {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},  // second
};

// The 16 bytes at offset off of each row's super-block i, transposed: V[k] lane r = dword k of row r.
TILE_512 static inline void kp_slice16(const uint8_t *const rows[PK_ROWS], size_t off, __m512i V[4]) {
  __m512i Z[4], M[4];
  for (int q = 0; q < 4; q++) {
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rows[4 * q] + off)));
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(rows[4 * q + 1] + off)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(rows[4 * q + 2] + off)), 2);
    Z[q] = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(rows[4 * q + 3] + off)), 3);
  }
  for (int h = 0; h < 2; h++) {
    const __m512i idx = _mm512_loadu_si512((const void *)kp_idx4[h]);
    M[h] = _mm512_permutex2var_epi32(Z[0], idx, Z[1]);      // rows 0..7, dwords 2h, 2h+1
    M[2 + h] = _mm512_permutex2var_epi32(Z[2], idx, Z[3]);  // rows 8..15
  }
  for (int k = 0; k < 4; k++)
    V[k] = _mm512_permutex2var_epi32(M[k / 2], _mm512_loadu_si512((const void *)kp_idx4[2 + k % 2]), M[2 + k / 2]);
}

// Byte b of every lane as fp32 (sign-extended when SIGNED).
TILE_512 static inline __m512 kp_byte_ps(__m512i v, int b, bool sign) {
  const __m512i up = _mm512_slli_epi32(v, 24 - 8 * b);
  return _mm512_cvtepi32_ps(sign ? _mm512_srai_epi32(up, 24) : _mm512_srli_epi32(up, 24));
}

// q4_K/q5_K facts of super-block i: d * sc_g per group, the min pairs (m_g, m_g+2) for
// g = 0, 1, 4, 5 (kp_aux pairs the group sums alike) and dmin.
TILE_512 static inline void kp_facts_k4(const uint8_t *const rows[PK_ROWS], uint8_t *dst) {
  __m512i V[4];
  kp_slice16(rows, 0, V);  // d | dmin, then the 12 scale bytes as 3 dwords
  const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(V[0]));
  const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(V[0], 16)));
  const __m512i lo6 = _mm512_set1_epi8(0x3f), lo4 = _mm512_set1_epi8(0x0f), hi2 = _mm512_set1_epi8(0x03);
  // k4_unpack_scales, lane-wise
  const __m512i sc[2] = {_mm512_and_si512(V[1], lo6),
                         _mm512_or_si512(_mm512_and_si512(V[3], lo4),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(V[1], 6), hi2), 4))};
  const __m512i mn[2] = {_mm512_and_si512(V[2], lo6),
                         _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(V[3], 4), lo4),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(V[2], 6), hi2), 4))};
  for (int g = 0; g < 8; g++)
    _mm512_store_ps((float *)(dst + g * KP_GROUP_BYTES(0) + 512), _mm512_mul_ps(d, kp_byte_ps(sc[g / 4], g % 4, false)));
  uint8_t *pr = dst + 8 * KP_GROUP_BYTES(0);
  const __m512i even = _mm512_set1_epi32(0x00FF00FF);
  for (int h = 0; h < 2; h++) {
    _mm512_store_si512((void *)(pr + 128 * h), _mm512_and_si512(mn[h], even));
    _mm512_store_si512((void *)(pr + 128 * h + 64), _mm512_and_si512(_mm512_srli_epi32(mn[h], 8), even));
  }
  _mm512_store_ps((float *)(pr + 256), dmin);
}

// q6_K facts of super-block i: d * sc_s per 16-code sub-block.
TILE_512 static inline void kp_facts_q6_K(const uint8_t *const rows[PK_ROWS], uint8_t *dst) {
  __m512i V[4];
  kp_slice16(rows, offsetof(block_q6_K, scales), V);
  uint16_t dh[PK_ROWS];
  for (int r = 0; r < PK_ROWS; r++) dh[r] = ((const block_q6_K *)(const void *)rows[r])->d;
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh));
  for (int s = 0; s < 16; s++)
    _mm512_store_ps((float *)(dst + (s / 2) * KP_GROUP_BYTES(1) + 512 + 64 * (s % 2)),
                    _mm512_mul_ps(d, kp_byte_ps(V[s / 4], s % 4, true)));
}

// A 16-row pack reads 16 rows of only nb * block bytes each (1.4 KiB of Q5_K at 2048 columns):
// too short for the hardware prefetchers, so it waits on memory at every row. Each pack step
// requests the super-blocks KP_AHEAD further on, and matmul_packed_k requests the next 16 rows
// while the tokens pass over these.
enum { KP_AHEAD = 2 };
// Super-blocks [first, end) of the 16 rows at w.
static inline void kp_prefetch(const char *w, size_t row_stride, int64_t first, int64_t end, size_t block) {
  for (int64_t k = first; k < end; k++)
    for (int r = 0; r < PK_ROWS; r++)
      for (size_t o = 0; o < block; o += 64) _mm_prefetch(w + r * row_stride + (size_t)k * block + o, _MM_HINT_T0);
}

#define DEFINE_KPACK16_K4(NAME, BLOCK, CODES2)                                                    \
  TILE_512 static void NAME(int64_t nb, const void *w, size_t row_stride, uint8_t *pack) {      \
    for (int64_t i = 0; i < nb; i++) {                                                           \
      if (i + KP_AHEAD < nb) kp_prefetch(w, row_stride, i + KP_AHEAD, i + KP_AHEAD + 1, sizeof(BLOCK));       \
      const uint8_t *rows[PK_ROWS];                                                              \
      for (int r = 0; r < PK_ROWS; r++) rows[r] = (const uint8_t *)w + r * row_stride + i * sizeof(BLOCK); \
      uint8_t *dst = pack + i * KP_SB_BYTES(0);                                                  \
      for (int k = 0; k < 4; k++) {                                                              \
        __m512i X[PK_ROWS];                                                                      \
        for (int r = 0; r < PK_ROWS; r++) X[r] = CODES2(rows[r], k);                             \
        kp_store2(X, dst + 2 * k * KP_GROUP_BYTES(0), KP_GROUP_BYTES(0));                        \
      }                                                                                          \
      kp_facts_k4(rows, dst);                                                                    \
    }                                                                                            \
  }
DEFINE_KPACK16_K4(kpack16_q4_K, block_q4_K, kcodes2_q4_K)
DEFINE_KPACK16_K4(kpack16_q5_K, block_q5_K, kcodes2_q5_K)

TILE_512 static void kpack16_q6_K(int64_t nb, const void *w, size_t row_stride, uint8_t *pack) {
  for (int64_t i = 0; i < nb; i++) {
    if (i + KP_AHEAD < nb) kp_prefetch(w, row_stride, i + KP_AHEAD, i + KP_AHEAD + 1, sizeof(block_q6_K));
    const uint8_t *rows[PK_ROWS];
    for (int r = 0; r < PK_ROWS; r++) rows[r] = (const uint8_t *)w + r * row_stride + i * sizeof(block_q6_K);
    uint8_t *dst = pack + i * KP_SB_BYTES(1);
    for (int h = 0; h < 2; h++) {
      __m512i L[PK_ROWS], H[PK_ROWS];
      for (int r = 0; r < PK_ROWS; r++) kcodes4_q6_K(rows[r], h, &L[r], &H[r]);
      kp_store2(L, dst + 4 * h * KP_GROUP_BYTES(1), KP_GROUP_BYTES(1));
      kp_store2(H, dst + (4 * h + 2) * KP_GROUP_BYTES(1), KP_GROUP_BYTES(1));
    }
    kp_facts_q6_K(rows, dst);
  }
}

// Per token and super-block of q8_K activations: what KP_AUX_BYTES describes.
TILE_512 static void kp_aux(bool split, int64_t nb, const void *x, size_t x_stride, int64_t tokens,
                            uint8_t *aux) {
  for (int64_t t = 0; t < tokens; t++) {
    const block_q8_K *b = (const block_q8_K *)((const char *)x + t * x_stride);
    uint8_t *dst = aux + (size_t)t * nb * KP_AUX_BYTES(split);
    if (split) {
      for (int64_t i = 0; i < nb; i++) {
        const __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)b[i].bsums));
        _mm512_storeu_si512((void *)(dst + 64 * i), _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(bs, 5)));
      }
      continue;
    }
    for (int64_t i = 0; i < nb; i++) {
      int16_t sg[8];
      for (int g = 0; g < 8; g++) sg[g] = (int16_t)(b[i].bsums[2 * g] + b[i].bsums[2 * g + 1]);
      uint32_t *o = (uint32_t *)(dst + 16 * i);
      for (int q = 0; q < 4; q++) {  // g = 0, 1, 4, 5 with g + 2, as kp_facts_k4 pairs the mins
        const int g = q + (q & 2);
        o[q] = (uint32_t)(uint16_t)sg[g] | (uint32_t)(uint16_t)sg[g + 2] << 16;
      }
    }
  }
}

#define DEFINE_KP_KERNEL(NAME, T, SPLIT)                                                          \
  TILE_512_VNNI static void NAME(int64_t nb, const uint8_t *pack, const void *x, size_t x_stride, \
                                 const uint8_t *aux, float *y, int64_t ldy) {                   \
    const block_q8_K *b[T];                                                                      \
    const int32_t *ax[T];                                                                        \
    for (int j = 0; j < T; j++) {                                                                \
      b[j] = (const block_q8_K *)((const char *)x + j * x_stride);                               \
      ax[j] = (const int32_t *)(aux + (size_t)j * nb * KP_AUX_BYTES(SPLIT));                     \
    }                                                                                            \
    __m512 fs[T];                                                                                \
    for (int j = 0; j < T; j++) fs[j] = _mm512_setzero_ps();                                     \
    for (int64_t i = 0; i < nb; i++) {                                                           \
      const uint8_t *src = pack + i * KP_SB_BYTES(SPLIT);                                        \
      __m512 sb[T];                                                                              \
      for (int j = 0; j < T; j++) sb[j] = _mm512_setzero_ps();                                   \
      for (int g = 0; g < 8; g++) {                                                              \
        const uint8_t *gd = src + g * KP_GROUP_BYTES(SPLIT);                                     \
        __m512i W[8];                                                                            \
        for (int k = 0; k < 8; k++) W[k] = _mm512_load_si512((const void *)(gd + 64 * k));      \
        const __m512 s0 = _mm512_load_ps((const float *)(gd + 512));                             \
        const __m512 s1 = _mm512_load_ps((const float *)(gd + 512 + 64 * (SPLIT)));              \
        for (int j = 0; j < T; j++) {                                                            \
          const int8_t *q = b[j][i].qs + 32 * g;                                                 \
          int32_t gq[8];                                                                         \
          memcpy(gq, q, 32);                                                                     \
          __m512i a0 = (SPLIT) ? _mm512_set1_epi32(ax[j][16 * i + 2 * g]) : _mm512_setzero_si512(); \
          __m512i a1 = (SPLIT) ? _mm512_set1_epi32(ax[j][16 * i + 2 * g + 1]) : _mm512_setzero_si512(); \
          for (int k = 0; k < 4; k++) a0 = _mm512_dpbusd_epi32(a0, W[k], _mm512_set1_epi32(gq[k])); \
          for (int k = 4; k < 8; k++) a1 = _mm512_dpbusd_epi32(a1, W[k], _mm512_set1_epi32(gq[k])); \
          if (SPLIT) {                                                                           \
            sb[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), s0, sb[j]);                          \
            sb[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1), s1, sb[j]);                          \
          } else                                                                                 \
            sb[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), s0, sb[j]);    \
        }                                                                                        \
      }                                                                                          \
      if (!(SPLIT)) {                                                                            \
        const uint8_t *cd = src + 8 * KP_GROUP_BYTES(SPLIT);                                     \
        __m512i C[4];                                                                            \
        for (int q = 0; q < 4; q++) C[q] = _mm512_load_si512((const void *)(cd + 64 * q));      \
        const __m512 dmin = _mm512_load_ps((const float *)(cd + 256));                           \
        for (int j = 0; j < T; j++) {                                                            \
          __m512i m = _mm512_setzero_si512();                                                    \
          for (int q = 0; q < 4; q++) m = dq_dpwssd_kept(m, C[q], _mm512_set1_epi32(ax[j][4 * i + q])); \
          sb[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), dmin, sb[j]);                          \
        }                                                                                        \
      }                                                                                          \
      for (int j = 0; j < T; j++) fs[j] = _mm512_fmadd_ps(sb[j], _mm512_set1_ps(b[j][i].d), fs[j]); \
    }                                                                                            \
    for (int j = 0; j < T; j++) _mm512_storeu_ps(y + j * ldy, fs[j]);                           \
  }
DEFINE_KP_KERNEL(kp4_tokens8, PK_TOK, 0)
DEFINE_KP_KERNEL(kp4_tokens1, 1, 0)
DEFINE_KP_KERNEL(kp6_tokens8, PK_TOK, 1)
DEFINE_KP_KERNEL(kp6_tokens1, 1, 1)

static int64_t matmul_packed_k(uint32_t type, int64_t n, const void *w, size_t row_stride,
                               const void *x, size_t x_stride, int64_t tokens, float *y,
                               int64_t ldy, int64_t rows) {
  void (*pack)(int64_t, const void *, size_t, uint8_t *);
  void (*k8)(int64_t, const uint8_t *, const void *, size_t, const uint8_t *, float *, int64_t);
  void (*k1)(int64_t, const uint8_t *, const void *, size_t, const uint8_t *, float *, int64_t);
  bool split = false;
  size_t block;
  switch (type) {
    case DQ_TYPE_Q4_K: pack = kpack16_q4_K; k8 = kp4_tokens8; k1 = kp4_tokens1; block = sizeof(block_q4_K); break;
    case DQ_TYPE_Q5_K: pack = kpack16_q5_K; k8 = kp4_tokens8; k1 = kp4_tokens1; block = sizeof(block_q5_K); break;
    case DQ_TYPE_Q6_K:
      pack = kpack16_q6_K; k8 = kp6_tokens8; k1 = kp6_tokens1; block = sizeof(block_q6_K); split = true;
      break;
    default: return 0;
  }
  const int64_t nb = n / QK_K;
  const size_t aux_tok = (size_t)nb * KP_AUX_BYTES(split);
  if (!dq_scratch_reserve(&pk_pack, (size_t)nb * KP_SB_BYTES(split)) ||
      !dq_scratch_reserve(&pk_aux_scratch, (size_t)tokens * aux_tok))
    return 0;
  kp_aux(split, nb, x, x_stride, tokens, pk_aux_scratch.buf);
  const int64_t done = rows / PK_ROWS * PK_ROWS;
  // The next 16 rows go to L2 a share after each token block: one thread, rows from memory
  // (32768 x 2048, 256 tokens, thread CPU time), Q5_K 150-157 -> 158-167 GMAC/s and Q6_K
  // 144-150 -> 158-160; in cache 1-3 % slower (_MM_HINT_NTA lost more in cache).
  const size_t lines = (nb * block + 63) / 64 + 1;  // + 1: rows need not start on a line
  const int64_t calls = tokens / PK_TOK + tokens % PK_TOK;
  const size_t per_call = (PK_ROWS * lines + (size_t)calls - 1) / (size_t)calls;
  for (int64_t r = 0; r < done; r += PK_ROWS) {
    pack(nb, (const char *)w + (size_t)r * row_stride, row_stride, pk_pack.buf);
    const char *next = r + PK_ROWS < done ? (const char *)w + (size_t)(r + PK_ROWS) * row_stride : NULL;
    size_t row = 0, col = 0;
    for (int64_t t = 0; t < tokens;) {
      if (t + PK_TOK <= tokens) {
        k8(nb, pk_pack.buf, (const char *)x + (size_t)t * x_stride, x_stride, pk_aux_scratch.buf + t * aux_tok,
           y + t * ldy + r, ldy);
        t += PK_TOK;
      } else {
        k1(nb, pk_pack.buf, (const char *)x + (size_t)t * x_stride, x_stride, pk_aux_scratch.buf + t * aux_tok,
           y + t * ldy + r, ldy);
        t++;
      }
      for (size_t k = 0; next && k < per_call && row < PK_ROWS; k++) {
        _mm_prefetch(next + row * row_stride + col * 64, _MM_HINT_T2);
        if (++col == lines) col = 0, row++;
      }
    }
  }
  return done;
}

int64_t dq_avx512_matmul_packed(uint32_t type, int64_t n, const void *w, size_t row_stride,
                                const void *x, size_t x_stride, int64_t tokens, float *y,
                                int64_t ldy, int64_t rows) {
  if (rows < PK_ROWS) return 0;
  void (*pack)(int64_t, const void *, size_t, uint8_t *);
  int off;
  switch (type) {
    case DQ_TYPE_Q4_0: pack = pack16_q4_0; off = 8; break;
    case DQ_TYPE_Q4_0_X16: pack = pack16_q4_0_x16; off = 8; break;
    case DQ_TYPE_Q5_0: pack = pack16_q5_0; off = 16; break;
    case DQ_TYPE_Q8_0: pack = pack16_q8_0; off = 128; break;
    default: return matmul_packed_k(type, n, w, row_stride, x, x_stride, tokens, y, ldy, rows);
  }
  const int64_t nb = n / QK8_0;
  if (!dq_scratch_reserve(&pk_pack, (size_t)nb * PK_BLOCK_BYTES) ||
      !dq_scratch_reserve(&pk_aux_scratch, (size_t)tokens * nb * 8))
    return 0;  // no memory: the caller's tiles do it all
  pk_aux(nb, x, x_stride, tokens, off, pk_aux_scratch.buf);
  const int64_t done = rows / PK_ROWS * PK_ROWS;
  for (int64_t r = 0; r < done; r += PK_ROWS) {
    pack(nb, (const char *)w + (size_t)r * row_stride, row_stride, pk_pack.buf);
    int64_t t = 0;
    for (; t + PK_TOK <= tokens; t += PK_TOK)
      pk_tokens8(nb, pk_pack.buf, (const char *)x + (size_t)t * x_stride, x_stride,
                 pk_aux_scratch.buf + (size_t)t * nb * 8, y + t * ldy + r, ldy);
    for (; t < tokens; t++)
      pk_tokens1(nb, pk_pack.buf, (const char *)x + (size_t)t * x_stride, x_stride,
                 pk_aux_scratch.buf + (size_t)t * nb * 8, y + t * ldy + r, ldy);
  }
  return done;
}

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
                    type == DQ_TYPE_Q8_0 || type == DQ_TYPE_Q4_0 || type == DQ_TYPE_Q5_0));
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
int64_t dq_avx512_matmul_packed(uint32_t type, int64_t n, const void *w, size_t row_stride,
                                const void *x, size_t x_stride, int64_t tokens, float *y,
                                int64_t ldy, int64_t rows) {
  (void)type; (void)n; (void)w; (void)row_stride; (void)x; (void)x_stride; (void)tokens;
  (void)y; (void)ldy; (void)rows;
  return 0;
}
dq_tile4_fn dq_avx512_tile4_kernel(uint32_t type, bool vnni) { (void)type; (void)vnni; return NULL; }
dq_tile_rows_fn dq_avx512_tile_rows_kernel(uint32_t type, int *rows, int *tokens) {
  (void)type; *rows = *tokens = 0; return NULL;
}

#endif
