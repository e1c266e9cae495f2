// Private to CKernels: the batched-product (tile) kernels of tiles_avx2.c and tiles_avx512.c and
// the few AVX2 helpers whose exact operation order they must share with the one-row dot kernels
// of quants_avx2.c (a tile gives each token exactly the bits of dq_vec_dot, so its horizontal
// sums and scale products must be the dot kernels' own).
#pragma once
#include "quants.h"

// AVX2 tiles (one weight row x 4 tokens) for the types quants_avx2.c has no tile for: Q4_0,
// Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. NULL for other types. vnni: use AVX-VNNI's dpbusd.
dq_tile4_fn dq_avx2_tile4_more(uint32_t type, bool vnni);
// AVX-512 BW/VL (+VNNI when vnni) tiles for the k-quants; NULL for other types.
dq_tile4_fn dq_avx512_tile4_kernel(uint32_t type, bool vnni);
// False where those tiles keep fp32 sums across super-blocks (the VNNI k-quant tiles), so a
// token's result is the one-row dot's up to summation order rather than its bits.
bool dq_avx512_tiles_exact(uint32_t type, bool vnni);

// Several weight rows (row_stride bytes apart) against several activation rows: y[j * ldy + r]
// for r and j below the kernel's row and token counts. Bit-identical per (row, token) to the one-row dot.
typedef void (*dq_tile_rows_fn)(int64_t n, const void *w, size_t row_stride, const void *x,
                                size_t x_stride, float *y, int64_t ldy);
// Q4_0 and Q5_0: 2 rows x 4 tokens (AVX2, AVX-VNNI) or 4 rows x 8 tokens (AVX-512 BW/VL + VNNI).
// NULL for other types; *rows and *tokens receive the kernel's counts.
dq_tile_rows_fn dq_avx2_tile_rows_kernel(uint32_t type, bool vnni, int *rows);
dq_tile_rows_fn dq_avx512_tile_rows_kernel(uint32_t type, int *rows, int *tokens);
// Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K on AVX-512 BW/VL + VNNI: the first rows / 16 * 16 of
// `rows` rows (from w) against `tokens` activation rows, repacking 16 weight rows at a time into
// per-thread scratch for all tokens; returns how many rows it did (0 for other types, fewer than
// 16 rows, or when its scratch cannot be allocated).
int64_t dq_avx512_matmul_packed(uint32_t type, int64_t n, const void *w, size_t row_stride,
                                const void *x, size_t x_stride, int64_t tokens, float *y,
                                int64_t ldy, int64_t rows);

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define TILE_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TILE_AVX2_VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

// The same operations, in the same order, as quants_avx2.c's hsum_ps and h2f.
TILE_AVX2 static inline float tile_hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TILE_AVX2 static inline float tile_h2f(dq_half h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h)));
}

TILE_AVX2 static inline __m256i tile_unpack_nibbles(const uint8_t *qs) {
  const __m128i b = _mm_loadu_si128((const __m128i *)qs);
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0F));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F));
  return _mm256_set_m128i(hi, lo);
}

// The 32 bits of qh spread to bytes: 0xFF where the bit is set.
TILE_AVX2 static inline __m256i tile_bits_to_bytes(uint32_t qh) {
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                         0x0101010101010101LL, 0x0000000000000000LL);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
  const __m256i mask = _mm256_set1_epi64x((long long)0x7FBFDFEFF7FBFDFEULL);
  v = _mm256_or_si256(v, mask);  // every bit except the one this byte tests
  return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

// Unsigned codes u = q + offset of a q4_0 (offset 8) or q5_0 (offset 16) block.
TILE_AVX2 static inline __m256i tile_ucodes_q4_0(const void *blk) {
  return tile_unpack_nibbles(((const block_q4_0 *)blk)->qs);
}
TILE_AVX2 static inline __m256i tile_ucodes_q5_0(const void *blk) {
  const block_q5_0 *a = blk;
  const __m256i hi = _mm256_and_si256(tile_bits_to_bytes(dq_load_u32le(a->qh)), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(tile_unpack_nibbles(a->qs), hi);
}

// R weight rows x 4 tokens of a signed 32-block type against q8_0, the weight codes taken
// unsigned: per 32-bit lane, sum (u - off) y = DOTACC(-off * sum y, u, y), the same exact integer
// the one-row dot forms as |q| . sign(y, q); -off * sum y is formed once per token and block and
// shared by the R rows, the 4 tokens' scales dw * dx with one conversion per block.
#define DEFINE_TILE_ROWS(NAME, ATTR, BLOCK, UCODES, OFF, R, DOTACC)                               \
  ATTR static void NAME(int64_t n, const void *w, size_t row_stride, const void *x,              \
                        size_t x_stride, float *y, int64_t ldy) {                               \
    const BLOCK *a[R];                                                                           \
    for (int r = 0; r < R; r++) a[r] = (const BLOCK *)((const char *)w + r * row_stride);       \
    const block_q8_0 *b[4];                                                                      \
    for (int j = 0; j < 4; j++) b[j] = (const block_q8_0 *)((const char *)x + j * x_stride);    \
    __m256 acc[R][4];                                                                            \
    for (int r = 0; r < R; r++)                                                                  \
      for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_ps();                               \
    const __m256i off = _mm256_set1_epi8(OFF), zero = _mm256_setzero_si256();                    \
    for (int64_t i = 0; i < n / QK8_0; i++) {                                                    \
      const uint64_t hx = (uint64_t)b[0][i].d | (uint64_t)b[1][i].d << 16 |                      \
                          (uint64_t)b[2][i].d << 32 | (uint64_t)b[3][i].d << 48;                 \
      const __m128 dx = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)hx));                          \
      __m256i yv[4], corr[4];                                                                    \
      for (int j = 0; j < 4; j++) {                                                              \
        yv[j] = _mm256_loadu_si256((const __m256i *)b[j][i].qs);                                 \
        corr[j] = _mm256_sub_epi32(zero, DOTACC(zero, off, yv[j]));                              \
      }                                                                                          \
      for (int r = 0; r < R; r++) {                                                              \
        const __m256i u = UCODES(&a[r][i]);                                                      \
        const __m256 sc = _mm256_castps128_ps256(_mm_mul_ps(_mm_set1_ps(tile_h2f(a[r][i].d)), dx)); \
        for (int j = 0; j < 4; j++) {                                                            \
          const __m256i p = DOTACC(corr[j], u, yv[j]);                                           \
          acc[r][j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(sc, _mm256_set1_epi32(j)),        \
                                      _mm256_cvtepi32_ps(p), acc[r][j]);                         \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
    for (int r = 0; r < R; r++)                                                                  \
      for (int j = 0; j < 4; j++) y[j * ldy + r] = tile_hsum_ps(acc[r][j]);                      \
  }

// Sub-block scales and mins of a q4_K/q5_K super-block.
static inline void tile_k4_scales(const uint8_t *scales, int32_t sc[8], int32_t m[8]) {
  for (int j = 0; j < 8; j++) {
    uint8_t s, mm;
    dq_get_scale_min_k4(j, scales, &s, &mm);
    sc[j] = s;
    m[j] = mm;
  }
}
#endif
