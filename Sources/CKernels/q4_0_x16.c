// Q4_0 rows repacked for decode on AVX-512 VNNI machines (DQ_TYPE_Q4_0_X16, a shadow the model
// builds at load; the file's bytes stay the truth for every other path). A row keeps its size
// (18 bytes per 32 columns): each run of 16 blocks (the row's last run may hold k < 16) is
//   the k fp16 scales (2k bytes), then 4 chunks of 4k bytes, chunk j = bytes 4j..4j+3 of every
//   block's qs, in block order,
// so the 32-bit lane l of a 64-byte chunk belongs to block l, and 8 dpbusd (4 chunks' low nibbles,
// 4 chunks' high nibbles) sum each block's whole dot in its own lane. Per 512 columns, token and
// row that leaves one fp16 -> fp32 of the 16 scales (shared by the tokens), one multiply by the
// token's 16 activation scales, one int -> float and one FMA, where the plain layout needs a scale
// pair, a multiply, a conversion and an FMA per 64 columns (the plain kernel was bound by that
// arithmetic, not by memory: 16.8 GB/s against Q4_K's 20 at the same bits per weight).
//
// A row's arithmetic does not depend on how many tokens or rows share the pass, so every decode
// walk of a shadowed matrix (one token, several, the dot) gives a token the same bits.
#pragma STDC FP_CONTRACT OFF
#include <stdlib.h>

#include "cpu_features.h"
#include "quants.h"
#include "scratch.h"

#include "dq_simd.h"

enum { X16_BLOCKS = 16 };

// Plain rows -> shadow rows (src and dst must not overlap); rows are 18 n / 32 bytes apart.
void dq_q4_0_x16_pack_rows(const void *src, void *dst, int64_t n, int64_t rows) {
  const int64_t nb = n / QK4_0;
  const size_t rs = (size_t)nb * sizeof(block_q4_0);
  for (int64_t r = 0; r < rows; r++) {
    const block_q4_0 *a = (const block_q4_0 *)((const char *)src + (size_t)r * rs);
    uint8_t *o = (uint8_t *)dst + (size_t)r * rs;
    for (int64_t g = 0; g < nb; g += X16_BLOCKS) {
      const int k = nb - g < X16_BLOCKS ? (int)(nb - g) : X16_BLOCKS;
      for (int l = 0; l < k; l++) memcpy(o + 2 * l, &a[g + l].d, 2);
      for (int j = 0; j < 4; j++)
        for (int l = 0; l < k; l++) memcpy(o + 2 * k + 4 * k * j + 4 * l, a[g + l].qs + 4 * j, 4);
      o += (size_t)k * sizeof(block_q4_0);
    }
  }
}

// One run of k blocks back to plain blocks.
static inline void unpack_run(const uint8_t *s, block_q4_0 *a, int k) {
  for (int l = 0; l < k; l++) memcpy(&a[l].d, s + 2 * l, 2);
  for (int j = 0; j < 4; j++)
    for (int l = 0; l < k; l++) memcpy(a[l].qs + 4 * j, s + 2 * k + 4 * k * j + 4 * l, 4);
}

// Shadow rows -> plain rows: the inverse of dq_q4_0_x16_pack_rows.
void dq_q4_0_x16_unpack_rows(const void *src, void *dst, int64_t n, int64_t rows) {
  const int64_t nb = n / QK4_0;
  const size_t rs = (size_t)nb * sizeof(block_q4_0);
  for (int64_t r = 0; r < rows; r++) {
    const uint8_t *s = (const uint8_t *)src + (size_t)r * rs;
    block_q4_0 *a = (block_q4_0 *)((char *)dst + (size_t)r * rs);
    for (int64_t g = 0; g < nb; g += X16_BLOCKS) {
      const int k = nb - g < X16_BLOCKS ? (int)(nb - g) : X16_BLOCKS;
      unpack_run(s, a + g, k);
      s += (size_t)k * sizeof(block_q4_0);
    }
  }
}

#if DQ_X86_SIMD
#include <immintrin.h>

#define TARGET512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE512 TARGET512 static inline __attribute__((always_inline))
enum { X16_TOK = 8, X16_PREP = 640 };

// Rows this many bytes ahead are requested into L2 while a row computes (as the k-quant and
// Q8_0 batched kernels do: with its arithmetic cheap, this kernel is bound by the misses).
// One token on rows of at least X16_L1_MIN_BLOCKS blocks (2048 columns) requests lines into L1
// X16_PF_L1 bytes ahead instead, as the r16 one-token kernels do. 1.7B Q4_0 file, decode tok/s
// alternated with the L2 requests (AMD EPYC, Zen 4): 2 threads better in 6 of 6 rounds by 1-9 %,
// 1 thread in 3 of 3 by 3-4 %. On narrower rows (360M and 135M Q4_0, 960 and 576 columns) the
// L1 requests lost 15-20 % at one thread, so those keep the L2 ones.
#ifndef X16_PREFETCH_BYTES
#define X16_PREFETCH_BYTES 16384
#endif
enum { X16_PF_L1 = 384, X16_L1_MIN_BLOCKS = 64 };

static _Thread_local dq_scratch scratch;

// A token's operands per run of 16 blocks, 640 bytes: the activation codes matching the 4 chunks'
// low nibbles (elements 4j..4j+3 of block l in lane l) and high nibbles (16+4j..), interleaved
// lo0 hi0 lo1 hi1 ..; then -8 sum x per block (int32 lane l), then its scale as fp32. Lanes of
// blocks past a short run are zero, so they add exactly 0. Runs major, tokens minor.
INLINE512 void x16_prep(int64_t nb, const char *x, size_t xs, int T, uint8_t *out) {
  const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                         _mm512_set1_epi32((int)sizeof(block_q8_0)));
  const __m512i z = _mm512_setzero_si512();
  for (int t = 0; t < T; t++) {
    const char *b = x + (size_t)t * xs;
    for (int64_t g = 0; g < nb; g += X16_BLOCKS) {
      const int k = nb - g < X16_BLOCKS ? (int)(nb - g) : X16_BLOCKS;
      const __mmask16 m = (__mmask16)((1u << k) - 1);
      const char *base = b + (size_t)g * sizeof(block_q8_0);
      uint8_t *o = out + ((size_t)(g / X16_BLOCKS) * T + t) * X16_PREP;
      __m512i sum8 = z;
      for (int j = 0; j < 4; j++) {
        const __m512i lo = _mm512_mask_i32gather_epi32(z, m, idx, base + 2 + 4 * j, 1);
        const __m512i hi = _mm512_mask_i32gather_epi32(z, m, idx, base + 18 + 4 * j, 1);
        _mm512_store_si512((void *)(o + 128 * j), lo);
        _mm512_store_si512((void *)(o + 128 * j + 64), hi);
        sum8 = _mm512_dpbusd_epi32(sum8, _mm512_set1_epi8(8), lo);
        sum8 = _mm512_dpbusd_epi32(sum8, _mm512_set1_epi8(8), hi);
      }
      _mm512_store_si512((void *)(o + 512), _mm512_sub_epi32(z, sum8));
      const __m512i d = _mm512_mask_i32gather_epi32(z, m, idx, base, 1);
      _mm512_store_ps((void *)(o + 576), _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d)));
    }
  }
}

// One row against T prepared tokens: y[t * ldy]. pf: distance of the prefetched stretch.
INLINE512 void x16_tok(int T, int64_t nb, const uint8_t *w, size_t pf, const uint8_t *px, float *y, int64_t ldy) {
  __m512 acc[X16_TOK];
  for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int64_t g = 0; g < nb; g += X16_BLOCKS) {
    const int k = nb - g < X16_BLOCKS ? (int)(nb - g) : X16_BLOCKS;
    const size_t bytes = (size_t)k * sizeof(block_q4_0);
    if (T == 1 && nb >= X16_L1_MIN_BLOCKS) {
      for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)w + X16_PF_L1 + o, _MM_HINT_T0);
    } else {
      for (size_t o = 63; o < bytes - 1; o += 64) _mm_prefetch((const char *)w + pf + o, _MM_HINT_T1);
      _mm_prefetch((const char *)w + pf + bytes - 1, _MM_HINT_T1);
    }
    __m512 dw;
    __m512i c[4];
    if (k == X16_BLOCKS) {
      dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w));
      for (int j = 0; j < 4; j++) c[j] = _mm512_loadu_si512((const void *)(w + 32 + 64 * j));
    } else {  // a short run: the same arithmetic on zeroed lanes
      dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << k) - 1), w));
      const __mmask64 mc = ((__mmask64)1 << (4 * k)) - 1;
      for (int j = 0; j < 4; j++) c[j] = _mm512_maskz_loadu_epi8(mc, w + 2 * k + 4 * k * j);
    }
    __m512i lo[4], hi[4];
    for (int j = 0; j < 4; j++) lo[j] = _mm512_and_si512(c[j], m4), hi[j] = _mm512_and_si512(_mm512_srli_epi16(c[j], 4), m4);
    const uint8_t *o = px + (size_t)(g / X16_BLOCKS) * T * X16_PREP;
    for (int t = 0; t < T; t++, o += X16_PREP) {
      // two chains of four (an integer sum: the bits of any order)
      __m512i s0 = _mm512_load_si512((const void *)(o + 512)), s1 = _mm512_setzero_si512();
      for (int j = 0; j < 4; j++) {
        s0 = _mm512_dpbusd_epi32(s0, lo[j], _mm512_load_si512((const void *)(o + 128 * j)));
        s1 = _mm512_dpbusd_epi32(s1, hi[j], _mm512_load_si512((const void *)(o + 128 * j + 64)));
      }
      const __m512 sc = _mm512_mul_ps(dw, _mm512_load_ps((const void *)(o + 576)));
      acc[t] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc[t]);
    }
    w += bytes;
  }
  for (int t = 0; t < T; t++) y[t * ldy] = _mm512_reduce_add_ps(acc[t]);
}

#define X16_TOK_CALL(T) x16_tok(T, nb, w + (size_t)r * s, pf, pc, yc + r, ldy)

// Prepared tokens kept at once (per thread) and the rows a block of a longer batch (prefill)
// holds in L2 while every chunk of 8 of those tokens passes over them.
enum { X16_PREP_BUDGET = 512 * 1024, X16_BLOCK_BYTES = 128 * 1024 };

// Every row against the tokens, in chunks of up to 8 (each row's arithmetic per token is the
// same whatever the chunk). A step of up to 8 tokens walks the rows once; a longer batch is
// prepared up to X16_PREP_BUDGET bytes of tokens at a time and walked in blocks of rows.
// False, doing nothing, when the scratch cannot be allocated.
TARGET512 static bool x16_tokens(int64_t n, const void *wv, size_t s, const void *x, size_t xs, int64_t tokens,
                                 float *y, int64_t ldy, int64_t rows) {
  const uint8_t *w = wv;
  const int64_t nb = n / QK4_0;
  const size_t per_token = (size_t)((nb + X16_BLOCKS - 1) / X16_BLOCKS) * X16_PREP;
  // whole rows ahead, so the requested stretch is this one's in a later row (s is 0 for a dot)
  const size_t pf = s == 0 || s >= X16_PREFETCH_BYTES ? s : (X16_PREFETCH_BYTES + s - 1) / s * s;
  int64_t span = (int64_t)(X16_PREP_BUDGET / per_token) / X16_TOK * X16_TOK;
  if (span < X16_TOK) span = X16_TOK;
  for (int64_t t0 = 0; t0 < tokens; t0 += span) {
    const int64_t ts = tokens - t0 < span ? tokens - t0 : span;
    uint8_t *px = dq_scratch_reserve(&scratch, (size_t)ts * per_token);
    if (!px) return false;
    for (int64_t c0 = 0; c0 < ts; c0 += X16_TOK) {
      const int T = ts - c0 < X16_TOK ? (int)(ts - c0) : X16_TOK;
      x16_prep(nb, (const char *)x + (size_t)(t0 + c0) * xs, xs, T, px + (size_t)c0 * per_token);
    }
    int64_t block = rows;
    if (ts > X16_TOK && s > 0) block = (int64_t)(X16_BLOCK_BYTES / s) > 1 ? (int64_t)(X16_BLOCK_BYTES / s) : 1;
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t r1 = rows - r0 < block ? rows : r0 + block;
      for (int64_t c0 = 0; c0 < ts; c0 += X16_TOK) {
        const int T = ts - c0 < X16_TOK ? (int)(ts - c0) : X16_TOK;
        const uint8_t *pc = px + (size_t)c0 * per_token;
        float *yc = y + (t0 + c0) * ldy;
        for (int64_t r = r0; r < r1; r++) {
          switch (T) {
            case 8: X16_TOK_CALL(8); break;
            case 7: X16_TOK_CALL(7); break;
            case 6: X16_TOK_CALL(6); break;
            case 5: X16_TOK_CALL(5); break;
            case 4: X16_TOK_CALL(4); break;
            case 3: X16_TOK_CALL(3); break;
            case 2: X16_TOK_CALL(2); break;
            default: X16_TOK_CALL(1); break;
          }
        }
      }
    }
  }
  return true;
}

bool dq_q4_0_x16_available(void) {
  return dq_cpu_has_avx2() && dq_cpu_has_avx512_int8() && dq_cpu_has_avx512vnni();
}

dq_matmul_tokens_fn dq_q4_0_x16_tokens_kernel(void) { return dq_q4_0_x16_available() ? x16_tokens : NULL; }

#else
bool dq_q4_0_x16_available(void) { return false; }
dq_matmul_tokens_fn dq_q4_0_x16_tokens_kernel(void) { return NULL; }
#endif
